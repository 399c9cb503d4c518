"""The MARLIN MNIST network (docs/marlin.md): five convs and one FC, no bias, ReLU, max pooling.

28x28 input: conv 1->3 7x7 (pad 3), conv 3->8 5x5 (pad 2), maxpool 3/2 (pad 1) -> 14, conv 8->10
3x3, conv 10->16 3x3 (pad 1), maxpool 3/2 (pad 1) -> 7, conv 16->24 3x3 (pad 1), maxpool 3/2 (no
padding) -> 3, FC 216->10. Quantization points: ``quant_in`` (affine) and an unsigned
``ActQuant`` after every ReLU.
"""
from __future__ import annotations

import torch
from torch import nn

from agn.layers import ApproxLinear
from agn.models.common import bind_chain, conv_unit, pool_out
from agn.quant import ActQuant


class MarlinMNIST(nn.Module):
    """The MNIST network of the MARLIN paper.

    Args:
        in_channels: input channels.
        input_size: input height = width (28 for MNIST gives FC 216 -> classes).
        num_classes: number of logits.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 28, num_classes: int = 10) -> None:
        super().__init__()
        unit = dict(bn=False, bias=False)
        self.quant_in = ActQuant(unsigned=False)
        self.features = nn.Sequential(
            *conv_unit(in_channels, 3, 7, **unit), *conv_unit(3, 8, 5, **unit),
            nn.MaxPool2d(3, 2, 1),
            *conv_unit(8, 10, 3, **unit), *conv_unit(10, 16, 3, **unit),
            nn.MaxPool2d(3, 2, 1),
            *conv_unit(16, 24, 3, **unit), nn.MaxPool2d(3, 2, 0))
        s = pool_out(pool_out(pool_out(input_size, 3, 2, 1), 3, 2, 1), 3, 2, 0)
        if s < 1:
            raise ValueError(f"MarlinMNIST: input_size={input_size} is too small (expected >= 9)")
        self.classifier = nn.Sequential(nn.Flatten(), ApproxLinear(24 * s * s, num_classes,
                                                                   bias=False))
        bind_chain([self.features, self.classifier], self.quant_in)
        for m in self.modules():  # no BN and no bias: He init keeps the signal alive at depth 6
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.quant_in(x)))
