"""Building blocks shared by the models: conv+BN+activation units and quantizer binding."""
from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from agn.layers import ApproxConv2d, is_approximable
from agn.quant import ActQuant


def conv_unit(cin: int, cout: int, kernel: int, stride: int = 1, padding: int | None = None,
              groups: int = 1, act: type[nn.Module] | None = nn.ReLU, bn: bool = True,
              bias: bool | None = None) -> list[nn.Module]:
    """``[ApproxConv2d, BatchNorm2d?, act?, ActQuant]``: one conv and its output quantization
    point.

    The quantizer is unsigned (zp = 0) after an activation, affine otherwise. Without BN the
    conv has a bias unless ``bias`` says otherwise.
    """
    pad = kernel // 2 if padding is None else padding
    mods: list[nn.Module] = [ApproxConv2d(cin, cout, kernel, stride, pad, groups=groups,
                                          bias=(not bn) if bias is None else bias)]
    if bn:
        mods.append(nn.BatchNorm2d(cout))
    if act is not None:
        mods.append(act())
    mods.append(ActQuant(unsigned=act is not None))
    return mods


def bind_chain(modules: Iterable[nn.Module], current: ActQuant | None) -> ActQuant | None:
    """Bind each approximable layer (depth-first order) to the latest quantizer before it.

    Returns the last quantizer of the chain (the output quantization point).
    """
    for top in modules:
        for m in top.modules():
            if isinstance(m, ActQuant):
                current = m
            elif is_approximable(m):
                if current is None:
                    raise ValueError(f"bind_chain: {type(m).__name__} has no quantizer before it")
                m.bind_input_quant(current)
    return current


def pool_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output size of a pooling/conv window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1
