"""Operand checks for the engine: multiplier, integer conversion, domains and geometry."""
from __future__ import annotations

from dataclasses import dataclass

import torch

import hwlib
from hwlib import Domain, DomainError, Multiplier


class OperandError(ValueError):
    """A layer operand of the wrong shape, geometry or value."""


@dataclass(frozen=True)
class ConvGeometry:
    """Shape facts of one convolution call (padding already applied to the input).

    Attributes:
        stride: (sy, sx).
        padding: (py, px), applied in the integer domain with the zero point.
        groups: number of groups.
        kernel: (kh, kw).
        c_in: input channels C.
        c_out: output channels Cout.
    """

    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    kernel: tuple[int, int]
    c_in: int
    c_out: int

    @property
    def fan_in(self) -> int:
        """Taps summed per output value: C/groups * kh * kw."""
        return self.c_in // self.groups * self.kernel[0] * self.kernel[1]


def resolve(multiplier: Multiplier | str) -> Multiplier:
    """The multiplier a spec string names (a Multiplier passes through)."""
    if not isinstance(multiplier, (Multiplier, str)):
        raise TypeError(f"multiplier: expected a hwlib.Multiplier or a spec string such as "
                        f"'marlin:17', got {type(multiplier).__name__} {multiplier!r}")
    return hwlib.get(multiplier)


def pair(value: int | tuple[int, int] | list[int], name: str, minimum: int) -> tuple[int, int]:
    """``value`` as a pair of ints >= ``minimum`` (an int stands for both)."""
    items = (value, value) if isinstance(value, int) else \
        tuple(value) if isinstance(value, (tuple, list)) else ()
    ok = len(items) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    if not ok or min(items) < minimum:
        raise OperandError(f"{name}: expected an int or a pair of ints >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def integer_tensor(t: torch.Tensor, name: str, domain: Domain, owner: str) -> torch.Tensor:
    """``t`` detached as an integer tensor after checking integrality and the domain.

    Float tensors must hold integers (fake-quant outputs); the result is uint8 when the domain
    fits 0..255, int8 when it fits -128..127, else int16/int64.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"operand {name} of {owner}: expected a torch.Tensor, got "
                        f"{type(t).__name__}")
    t = t.detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"operand {name} of {owner}: expected an integer or integer-valued float "
                        f"tensor, got dtype {t.dtype}")
    target = small_int_dtype(domain)
    if t.dtype == target and _covers(domain, t.dtype):
        return t  # every value of the dtype lies in the domain: nothing to check
    if t.numel():
        lo, hi = (float(v) for v in torch.aminmax(t))
        if t.is_floating_point():
            if not (lo == lo and hi == hi):
                raise DomainError(f"operand {name} of {owner}: holds NaN; expected integers in "
                                  f"{domain.name} [{domain.lo}, {domain.hi}]")
            if not torch.equal(t.trunc(), t):
                frac = (t - t.trunc()).flatten()
                bad = float(t.flatten()[frac.nonzero()[0, 0]])
                raise DomainError(f"operand {name} of {owner}: value {bad} is not an integer; "
                                  f"expected integers in {domain.name} [{domain.lo}, {domain.hi}]")
        if lo < domain.lo or hi > domain.hi:
            bad = lo if lo < domain.lo else hi
            raise DomainError(f"operand {name} of {owner}: value {bad:g} outside its domain "
                              f"[{domain.lo}, {domain.hi}] ({domain.name})")
    return t.to(target)


def _covers(domain: Domain, dtype: torch.dtype) -> bool:
    """Whether ``domain`` holds every value of the integer ``dtype``."""
    info = torch.iinfo(dtype)
    return domain.lo <= info.min and info.max <= domain.hi


def small_int_dtype(domain: Domain) -> torch.dtype:
    """Smallest torch integer dtype holding every value of ``domain``."""
    if 0 <= domain.lo and domain.hi <= 255:
        return torch.uint8
    if -128 <= domain.lo and domain.hi <= 127:
        return torch.int8
    if -2**15 <= domain.lo and domain.hi < 2**15:
        return torch.int16
    return torch.int64


def check_zero_point(zero_point: int, domain: Domain, owner: str) -> int:
    """``zero_point`` as int after checking it lies in the activation domain."""
    if isinstance(zero_point, bool) or not isinstance(zero_point, int):
        if isinstance(zero_point, torch.Tensor) and zero_point.numel() == 1 \
                and not zero_point.is_floating_point():
            zero_point = int(zero_point)
        else:
            raise TypeError(f"zero_point of {owner}: expected an int, got {zero_point!r}")
    if not domain.lo <= zero_point <= domain.hi:
        raise DomainError(f"zero_point of {owner}: value {zero_point} outside the activation "
                          f"domain {domain.name} [{domain.lo}, {domain.hi}]")
    return zero_point


def conv_geometry(x: torch.Tensor, w: torch.Tensor, stride: int | tuple[int, int],
                  padding: int | tuple[int, int], groups: int) -> ConvGeometry:
    """Check the shapes of a conv2d call and return its geometry."""
    for name, t in (("x", x), ("w", w)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"operand {name}: expected a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 4:
        raise OperandError(f"approx_conv2d: x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if w.dim() != 4:
        raise OperandError(f"approx_conv2d: w must be 4-D (Cout, C/groups, kh, kw), got shape "
                           f"{tuple(w.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise OperandError(f"approx_conv2d: groups must be an int >= 1, got {groups!r}")
    st, pad = pair(stride, "stride", 1), pair(padding, "padding", 0)
    n, c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    if c % groups or cout % groups:
        raise OperandError(f"approx_conv2d: groups={groups} must divide C={c} and Cout={cout}")
    if cg != c // groups:
        raise OperandError(f"approx_conv2d: w has {cg} input channels per group, expected "
                           f"C/groups = {c}/{groups} = {c // groups}")
    if h + 2 * pad[0] < kh or wd + 2 * pad[1] < kw:
        raise OperandError(f"approx_conv2d: kernel {kh}x{kw} larger than the padded input "
                           f"{h + 2 * pad[0]}x{wd + 2 * pad[1]}")
    if min(n, c, cout, kh, kw) == 0:
        raise OperandError(f"approx_conv2d: empty operand, x {tuple(x.shape)}, w {tuple(w.shape)}")
    return ConvGeometry(st, pad, groups, (kh, kw), c, cout)


def linear_as_conv(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Views of linear operands (N, K), (Cout, K) as a 1x1 convolution."""
    for name, t in (("x", x), ("w", w)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"operand {name}: expected a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 2 or w.dim() != 2:
        raise OperandError(f"approx_linear: expected x (N, K) and w (Cout, K), got shapes "
                           f"{tuple(x.shape)} and {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise OperandError(f"approx_linear: x has K={x.shape[1]} features but w expects "
                           f"K={w.shape[1]}")
    return x[:, :, None, None], w[:, :, None, None]
