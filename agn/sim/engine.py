"""The public engine: bit-exact approximate conv2d / linear, dispatching to the planned kernel."""
from __future__ import annotations

import weakref
from collections import OrderedDict

import torch
import torch.nn.functional as F

from agn.sim import kernels
from agn.sim.factors import network_error_table, terms_for, u8s8_for
from agn.sim.operands import (check_zero_point, conv_geometry, integer_tensor, linear_as_conv,
                              resolve)
from agn.sim.plan import INT32_LIMIT, Plan, choose
from hwlib import Multiplier

_CACHE_SIZE = 256
# (id(w), version, id(m), path, kernel, stride, groups) -> (weakref to w, multiplier, plan, prep)
_CACHE: OrderedDict[tuple, tuple] = OrderedDict()


def approx_conv2d(x: torch.Tensor, w: torch.Tensor, multiplier: Multiplier | str,
                  stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                  groups: int = 1, zero_point: int = 0, *, path: str | None = None,
                  kernel: str | None = None) -> torch.Tensor:
    """Exact ``sum_taps m(xpad, w)`` of an approximate multiplier (no bias), dilation 1.

    Args:
        x: (N, C, H, W) integers (any integer dtype, or float holding integers) in
            ``m.network_x_domain()`` (0..255 for MARLIN, 0..127 for signed EvoApprox circuits).
        w: (Cout, C/groups, kh, kw) integers in ``m.w_domain`` (int8).
        multiplier: hwlib multiplier or spec string (``"marlin:17"``).
        stride: int or (sy, sx).
        padding: int or (py, px); padded taps hold ``zero_point`` and go through the multiplier.
        groups: conv groups (C for depthwise).
        zero_point: activation zero point, inside the activation domain.
        path: force an engine path (tests, benchmarks); UnsafePathError when it is not exact.
        kernel: force a kernel likewise.

    Returns:
        int32 (N, Cout, Ho, Wo) accumulators (int64 when the proven bound reaches 2^31),
        contiguous, not requiring grad.

    Raises:
        hwlib.DomainError: an operand or the zero point outside its domain, or not an integer.
        OperandError: shapes or geometry that do not fit together.
        TypeError: a non-tensor operand or unknown multiplier type.
    """
    m = resolve(multiplier)
    geo = conv_geometry(x, w, stride, padding, groups)
    xd = m.network_x_domain()
    zp = check_zero_point(zero_point, xd, m.spec)
    plan_, prep = _prepared(m, w, geo.stride, groups, path, kernel)
    xi = integer_tensor(x, "x", xd, m.spec)
    x_index = xi.long() - xd.lo if xd.lo else xi.long()
    (py, px) = geo.padding
    if py or px:
        x_index = F.pad(x_index, (px, px, py, py), value=zp - xd.lo)
    out_dtype = torch.int32 if plan_.out_bound < INT32_LIMIT else torch.int64
    with torch.no_grad():
        if plan_.path == "gather":
            return kernels.run_gather(prep, x_index, geo.kernel, geo.c_out, geo.stride, groups,
                                      out_dtype)
        return kernels.run_terms(prep, x_index, geo.c_out, geo.stride, groups, out_dtype)


def approx_linear(x: torch.Tensor, w: torch.Tensor, multiplier: Multiplier | str, *,
                  path: str | None = None, kernel: str | None = None) -> torch.Tensor:
    """Exact ``sum_k m(x[n, k], w[co, k])``: x (N, K), w (Cout, K); int32 (N, Cout).

    Same domains, errors and output dtype rule as :func:`approx_conv2d`.
    """
    x4, w4 = linear_as_conv(x, w)
    return approx_conv2d(x4, w4, multiplier, path=path, kernel=kernel)[:, :, 0, 0]


def describe(multiplier: Multiplier | str, w: torch.Tensor, stride: int | tuple[int, int] = 1,
             groups: int = 1) -> Plan:
    """The Plan :func:`approx_conv2d` uses for these weights (for ``extra_repr``)."""
    from agn.sim.operands import pair

    return _prepared(resolve(multiplier), w, pair(stride, "stride", 1), groups, None, None)[0]


def _prepared(m: Multiplier, w: torch.Tensor, stride: tuple[int, int], groups: int,
              path: str | None, kernel: str | None) -> tuple[Plan, kernels.Prepared]:
    """Plan and weight transforms for (w, m), cached while ``w`` is the same unmodified tensor."""
    key = (id(w), w._version, id(m), path, kernel, stride, groups)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is w and hit[1] is m:
        _CACHE.move_to_end(key)
        return hit[2], hit[3]
    wi = integer_tensor(w, "w", m.w_domain, m.spec).long() - m.w_domain.lo
    fan_in = wi[0].numel()
    p = choose(m, wi, fan_in, path, kernel)
    if p.path == "gather":
        table = network_error_table(m) + m.exact_table()[_rows(m)]
        prep = kernels.prepare_gather(table, p.kernel, wi, groups)
    else:
        t = terms_for(m)
        assert t is not None
        prep = kernels.prepare_terms(t, u8s8_for(m), p.kernel, wi, stride, groups)
    _CACHE[key] = (weakref.ref(w), m, p, prep)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return p, prep


def _rows(m: Multiplier) -> slice:
    xd = m.network_x_domain()
    return slice(xd.lo - m.x_domain.lo, xd.hi - m.x_domain.lo + 1)


def clear_cache() -> None:
    """Drop every cached weight transform."""
    _CACHE.clear()
