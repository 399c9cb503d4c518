"""The public engine: bit-exact approximate conv2d / linear, dispatching to the planned kernel."""
from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from agn.sim import ckernel, kernels
from agn.sim.factors import network_error_table, terms_for, u8s8_for
from agn.sim.operands import (
    check_zero_point,
    conv_geometry,
    integer_tensor,
    linear_as_conv,
    pair,
    resolve,
)
from agn.sim.plan import INT32_LIMIT, Plan, choose
from hwlib import Multiplier

CACHE_BYTES = 512 << 20
# Prepared kernels keyed by the weights' bytes (so a fresh tensor holding the same integers hits,
# and any change misses), the multiplier object and the call geometry; least recently used
# entries go once the prepared weights and tables pass CACHE_BYTES.
_CACHE: OrderedDict[tuple, tuple[Multiplier, Plan, object]] = OrderedDict()
_CACHE_TOTAL = 0  # bytes of the prepared kernels in _CACHE, kept as entries come and go
_LOCK = threading.Lock()


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
        int32 (N, Cout, Ho, Wo) accumulators (int64 when the proven bound reaches 2^31), not
        requiring grad; the memory format is unspecified (often channels-last).

    Raises:
        hwlib.DomainError: an operand or the zero point outside its domain, or not an integer.
        OperandError: shapes or geometry that do not fit together.
        TypeError: a non-tensor operand or unknown multiplier type.
    """
    m = resolve(multiplier)
    geo = conv_geometry(x, w, stride, padding, groups)
    xd = m.network_x_domain()
    zp = check_zero_point(zero_point, xd, m.spec)
    p, prepared = _prepared(m, w, geo.stride, geo.padding, groups, zp, path, kernel)
    xi = integer_tensor(x, "x", xd, m.spec)
    out_dtype = torch.int32 if p.out_bound < INT32_LIMIT else torch.int64
    with torch.no_grad():
        if isinstance(prepared, kernels.GatherKernel):
            return kernels.run_gather(prepared, xi, geo.padding, zp, xd.lo, geo.kernel, geo.c_out,
                                      geo.stride, groups, out_dtype)
        assert isinstance(prepared, kernels.TermsKernel)
        return kernels.run_terms(prepared, xi, geo.padding, zp, xd.lo, geo.c_out, geo.stride,
                                 groups, out_dtype)


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
    m = resolve(multiplier)
    wi = integer_tensor(w, "w", m.w_domain, m.spec).long() - m.w_domain.lo
    pair(stride, "stride", 1)
    return choose(m, wi, wi[0].numel(), groups=groups)


def _prepared(m: Multiplier, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
              groups: int, zp: int, path: str | None,
              kernel: str | None) -> tuple[Plan, kernels.TermsKernel | kernels.GatherKernel]:
    """Plan and prepared kernel for (w, m, geometry), cached on the weights' integer content."""
    wi = integer_tensor(w, "w", m.w_domain, m.spec)
    key = (wi.numpy().tobytes(), tuple(wi.shape), id(m), stride, padding, groups, zp, path,
           kernel)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is m:
            _CACHE.move_to_end(key)
            return hit[1], hit[2]  # type: ignore[return-value]
    w_index = wi.long() - m.w_domain.lo
    p = choose(m, w_index, w_index[0].numel(), path, kernel, groups)
    x_lo = m.network_x_domain().lo
    prepared: kernels.TermsKernel | kernels.GatherKernel
    if p.path == "gather":
        rows = slice(x_lo - m.x_domain.lo, m.network_x_domain().hi - m.x_domain.lo + 1)
        table = network_error_table(m) + m.exact_table()[rows]
        prepared = kernels.prepare_gather(table, p.kernel, w_index, groups)
    else:
        t = terms_for(m)
        assert t is not None
        prepared = kernels.prepare_terms(t, u8s8_for(m), p.kernel, w_index, stride, padding,
                                         groups, x_lo, zp, p.slices)
    _remember(key, (m, p, prepared))
    return p, prepared


def _remember(key: tuple, entry: tuple[Multiplier, Plan, object]) -> None:
    """Insert (or replace) a cache entry, then evict the least recently used ones while the
    running byte total passes CACHE_BYTES (the newest entry always stays)."""
    global _CACHE_TOTAL
    with _LOCK:
        old = _CACHE.pop(key, None)
        if old is not None:
            _CACHE_TOTAL -= old[2].nbytes  # type: ignore[attr-defined]
        _CACHE[key] = entry
        _CACHE_TOTAL += entry[2].nbytes  # type: ignore[attr-defined]
        while _CACHE_TOTAL > CACHE_BYTES and len(_CACHE) > 1:
            _CACHE_TOTAL -= _CACHE.popitem(last=False)[1][2].nbytes  # type: ignore[attr-defined]


def cache_bytes() -> int:
    """Bytes of the prepared kernels the cache holds (a running total, updated on insert and
    eviction)."""
    return _CACHE_TOTAL


def clear_cache() -> None:
    """Drop every cached prepared kernel (and this thread's feature workspace)."""
    global _CACHE_TOTAL
    with _LOCK:
        _CACHE.clear()
        _CACHE_TOTAL = 0
    ckernel.release_workspace()
