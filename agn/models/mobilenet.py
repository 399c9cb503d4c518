"""A small MobileNetV2 (inverted residuals, depthwise 3x3, linear bottlenecks) for small images.

Quantization points: ``quant_in`` (affine); after each ReLU6 an unsigned ``ActQuant``; after each
projection (no activation) an affine one; residual blocks quantize the add with ``add_quant``
(affine: no ReLU after the add); ``pool_quant`` before the classifier. BN follows every conv in
an ``nn.Sequential`` (foldable with :func:`agn.layers.fold_bn`).
"""
from __future__ import annotations

import torch
from torch import nn

from agn.layers import ApproxLinear
from agn.models.common import bind_chain, conv_unit
from agn.quant import ActQuant

# (expansion t, output channels c, repeats n, first stride s)
SMALL_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2))


class InvertedResidual(nn.Module):
    """1x1 expand (t > 1), 3x3 depthwise, 1x1 linear projection, residual add when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, t: int, in_quant: ActQuant) -> None:
        super().__init__()
        hidden = cin * t
        mods = conv_unit(cin, hidden, 1, act=nn.ReLU6) if t != 1 else []
        mods += conv_unit(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6)
        mods += conv_unit(hidden, cout, 1, act=None)
        self.conv = nn.Sequential(*mods)
        self.use_res = stride == 1 and cin == cout
        self.add_quant = ActQuant(unsigned=False) if self.use_res else None
        last = bind_chain([self.conv], in_quant)
        self.out_quant: ActQuant = self.add_quant if self.use_res else last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.add_quant(x + y) if self.use_res else y


class MobileNetV2Small(nn.Module):
    """MobileNetV2 with a 16-channel stem, SMALL_SETTINGS blocks and a 256-channel head.

    Args:
        in_channels: input channels.
        input_size: input height = width (any: global average pooling).
        num_classes: number of logits.
        head: channels of the last 1x1 conv.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 32, num_classes: int = 10,
                 head: int = 256) -> None:
        super().__init__()
        self.quant_in = ActQuant(unsigned=False)
        self.stem = nn.Sequential(*conv_unit(in_channels, 16, 3, act=nn.ReLU6))
        current = bind_chain([self.stem], self.quant_in)
        blocks, cin = [], 16
        for t, c, n, s in SMALL_SETTINGS:
            for i in range(n):
                block = InvertedResidual(cin, c, s if i == 0 else 1, t, current)
                blocks.append(block)
                current, cin = block.out_quant, c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(*conv_unit(cin, head, 1, act=nn.ReLU6))
        bind_chain([self.head], current)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pool_quant = ActQuant()
        self.fc = ApproxLinear(head, num_classes)
        self.fc.bind_input_quant(self.pool_quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(self.quant_in(x))))
        return self.fc(self.pool_quant(self.pool(x)).flatten(1))
