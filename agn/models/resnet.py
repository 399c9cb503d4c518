"""CIFAR-style ResNets (He et al. 2016): depth 6n+2, option-A shortcuts (subsample + zero channels).

Quantization points (explicit ``ActQuant`` modules, export reads them):
``quant_in`` (affine network input); ``stem`` ends with an unsigned quantizer; in each
:class:`BasicBlock`, ``branch`` = conv1-BN-ReLU-quant(unsigned)-conv2-BN-quant(affine: the residual
operand before the add), ``shortcut`` carries the block input (already uint8, zp = 0; option A pads
whole channels with integer 0 = zp and subsamples, no conv), ``out_quant`` quantizes
``relu(branch + shortcut)`` (unsigned). ``pool_quant`` quantizes the global average pool before
``fc``. BatchNorm follows every conv inside an ``nn.Sequential``, so :func:`agn.layers.fold_bn`
folds it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agn.layers import ApproxLinear
from agn.models.common import bind_chain, conv_unit
from agn.quant import ActQuant


class ShortcutA(nn.Module):
    """Option-A shortcut: take every ``stride``-th pixel and zero-pad the new channels."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        lo = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.extra - lo))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN, a residual add and its output quantizer."""

    def __init__(self, cin: int, cout: int, stride: int, in_quant: ActQuant) -> None:
        super().__init__()
        self.branch = nn.Sequential(*conv_unit(cin, cout, 3, stride),
                                    *conv_unit(cout, cout, 3, act=None))
        self.shortcut = ShortcutA(cin, cout, stride) if stride != 1 or cin != cout \
            else nn.Identity()
        self.out_quant = ActQuant()
        bind_chain([self.branch], in_quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_quant(F.relu(self.branch(x) + self.shortcut(x)))


class ResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2 (8, 14, 20, 32, 56, ...), widths 16/32/64.

    Args:
        depth: 6n + 2.
        in_channels: input channels.
        input_size: input height = width (any size: global average pooling).
        num_classes: number of logits.
    """

    def __init__(self, depth: int = 20, in_channels: int = 3, input_size: int = 32,
                 num_classes: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet: depth must be 6n+2 with n >= 1 (8, 14, 20, ...), "
                             f"got {depth}")
        n = (depth - 2) // 6
        self.quant_in = ActQuant(unsigned=False)
        self.stem = nn.Sequential(*conv_unit(in_channels, 16, 3))
        current = bind_chain([self.stem], self.quant_in)
        blocks, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                block = BasicBlock(cin, width, stride, current)
                blocks.append(block)
                current, cin = block.out_quant, width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pool_quant = ActQuant()
        self.fc = ApproxLinear(64, num_classes)
        self.fc.bind_input_quant(self.pool_quant)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.quant_in(x)))
        return self.fc(self.pool_quant(self.pool(x)).flatten(1))
