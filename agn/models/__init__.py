"""Model architectures built from approximable layers, and a registry by name."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from agn.layers import approx_layers
from agn.models.lenet import LeNet5
from agn.models.marlin_mnist import MarlinMNIST
from agn.models.mobilenet import MobileNetV2Small
from agn.models.resnet import ResNet

__all__ = ["LeNet5", "MODELS", "MarlinMNIST", "MobileNetV2Small", "ResNet", "build_model"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "marlin_mnist": MarlinMNIST,
    **{f"resnet{d}": partial(ResNet, d) for d in (8, 14, 20, 32, 56)},
    "mobilenetv2_small": MobileNetV2Small,
}


def build_model(name: str, in_channels: int, input_size: int, num_classes: int = 10) -> nn.Module:
    """The model registered as ``name`` for inputs (in_channels, input_size, input_size).

    Its last approximable layer (the classifier producing the logits) quantizes its weights with
    one scale for all output channels, so the integer network's int32 logits rank like the real
    ones (per-channel scales would reorder them).
    """
    if name not in MODELS:
        raise ValueError(f"model {name!r}: unknown; known models: {', '.join(sorted(MODELS))}")
    model = MODELS[name](in_channels=in_channels, input_size=input_size, num_classes=num_classes)
    approx_layers(model)[-1][1].per_channel = False  # the logits: one weight scale (see layers)
    return model
