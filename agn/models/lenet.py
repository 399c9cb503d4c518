"""LeNet-5 for 1-channel digits: works on 8x8 (sklearn digits) and 28x28 (MNIST) inputs.

Quantization points: ``quant_in`` (affine network input), one unsigned ``ActQuant`` after every
ReLU (max pooling keeps the grid). Convs and FCs have biases (no BatchNorm).
"""
from __future__ import annotations

import torch
from torch import nn

from agn.layers import ApproxLinear
from agn.models.common import bind_chain, conv_unit, pool_out
from agn.quant import ActQuant


class LeNet5(nn.Module):
    """conv 5x5 (6) - pool - conv 5x5 (16) - pool - FC 120 - FC 84 - FC classes, ReLU.

    Args:
        in_channels: input channels.
        input_size: input height = width; conv2 is padded when the input is smaller than 20.
        num_classes: number of logits.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 28, num_classes: int = 10) -> None:
        super().__init__()
        pad2 = 2 if input_size < 20 else 0
        self.quant_in = ActQuant(unsigned=False)
        self.features = nn.Sequential(
            *conv_unit(in_channels, 6, 5, padding=2, bn=False), nn.MaxPool2d(2),
            *conv_unit(6, 16, 5, padding=pad2, bn=False), nn.MaxPool2d(2))
        s = pool_out(pool_out(input_size, 2, 2) + 2 * pad2 - 4, 2, 2)
        if s < 1:
            raise ValueError(f"LeNet5: input_size={input_size} is too small (expected >= 4)")
        self.classifier = nn.Sequential(
            nn.Flatten(), ApproxLinear(16 * s * s, 120), nn.ReLU(), ActQuant(),
            ApproxLinear(120, 84), nn.ReLU(), ActQuant(), ApproxLinear(84, num_classes))
        bind_chain([self.features, self.classifier], self.quant_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.quant_in(x)))
