"""The int8 x int8 -> int32 matrix product (``torch._int_mm``) and its start-up self-test.

The engine sums the uint8 x int8 features of 1x1 layers (linear layers above all) with it
instead of the oneDNN convolution, whose fixed cost per call dominates small layers (a
144 x 840 x 84 product: about 20 us against 190 us). Activation features ``f`` in 0..255 enter
as the int8 values ``f - 128`` (an XOR with 0x80), the caller adding back
``128 * sum_taps g`` per output.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

INT32_LIMIT = 2**31


@dataclass(frozen=True)
class SelfTest:
    """Outcome of the self-test: ``ok`` and a line of detail."""

    ok: bool
    detail: str


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of int8 (M, K) and (K, N) in int32 accumulators (exact while they fit)."""
    return torch._int_mm(row_major(a), row_major(b))


def row_major(t: torch.Tensor) -> torch.Tensor:
    """``t`` (M, K) with strides exactly (K, 1), copied when they differ.

    ``torch._int_mm`` reads a matrix with a dimension of size 1 by its stride, which torch's
    contiguity check ignores (a (1, 7) transpose of a (7, 1) matrix has strides (1, 1) and gave
    garbage), so ``.contiguous()`` is not enough.
    """
    if t.stride() == (t.shape[1], 1):
        return t
    return torch.empty(t.shape, dtype=t.dtype).copy_(t)


def shift_features(feats: torch.Tensor) -> torch.Tensor:
    """uint8 features ``f`` as a new int8 tensor of the values ``f - 128`` (one XOR with 0x80).

    Not in place: the features may sit in a workspace made under ``torch.inference_mode``,
    which torch refuses to update in place outside it.
    """
    return torch.bitwise_xor(feats, 0x80).view(torch.int8)


@lru_cache(maxsize=1)
def selftest() -> SelfTest:
    """Check ``torch._int_mm`` against int64 products (cached; run once per process).

    Covers the extremes of int8 (products of -128 x -128 summed to 2^30), sums that cancel, and
    odd shapes (one row, one column, odd K, transposed operands).
    """
    try:
        gen = torch.Generator().manual_seed(11)
        cases = [(torch.full((3, 65536), -128, dtype=torch.int8),
                  torch.full((65536, 2), -128, dtype=torch.int8))]
        half = torch.randint(-128, 128, (4, 1024), generator=gen, dtype=torch.int8)
        wh = torch.randint(-128, 128, (1024, 3), generator=gen, dtype=torch.int8)
        cases.append((torch.cat([half, half], 1), torch.cat([wh, -wh.clamp(min=-127)], 0)))
        for m, k, n in ((1, 1, 1), (1, 1, 7), (1, 25, 3), (7, 33, 1), (144, 175, 6),
                        (37, 300, 84)):
            cases.append((torch.randint(-128, 128, (m, k), generator=gen, dtype=torch.int8),
                          torch.randint(-128, 128, (n, k), generator=gen, dtype=torch.int8).t()))
        for i, (a, b) in enumerate(cases):
            got = matmul(a, b)
            ref = a.to(torch.int64) @ b.to(torch.int64)
            if got.dtype != torch.int32 or not torch.equal(got.to(torch.int64), ref):
                return SelfTest(False, f"case {i}: int8 product differs from int64")
    except (RuntimeError, AttributeError, NotImplementedError, TypeError) as exc:
        return SelfTest(False, f"torch._int_mm unavailable: {exc}")
    return SelfTest(True, f"{len(cases)} int8 product cases bit-exact")


def available() -> bool:
    """True when ``torch._int_mm`` passed its self-test in this process."""
    return selftest().ok


def fits(f8: np.ndarray, g8: np.ndarray, w_index: torch.Tensor, fan_in: int) -> bool:
    """Whether the shifted sums ``sum_taps sum_r (f8 - 128) g8`` stay below 2^31 for every output.

    Args:
        f8: int64 (R + 1, n_x) uint8-valued activation features.
        g8: int64 (R + 1, n_w) int8-valued weight features.
        w_index: int64 (Cout, ...) weight indices.
        fan_in: taps per output.
    """
    from agn.sim.plan import tap_sum_max

    fmax = np.abs(f8 - 128).max(axis=1).astype(np.float64)
    return tap_sum_max(fmax @ np.abs(g8).astype(np.float64), w_index, fan_in) < INT32_LIMIT
