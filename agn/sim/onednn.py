"""The uint8 x int8 oneDNN convolution (scale 1, float32 output) and its start-up self-test."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SelfTest:
    """Outcome of the oneDNN self-test: ``ok`` and a line of detail."""

    ok: bool
    detail: str


def prepack(w8: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int], groups: int,
            x_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Pack int8 weights (Cout, C/groups, kh, kw) once for :func:`conv` (scale 1, zero pad)."""
    ones = torch.ones(w8.shape[0], dtype=torch.float32)
    return torch.ops.onednn.qconv_prepack(w8.contiguous(), ones, 1.0, 0, list(stride),
                                          list(padding), [1, 1], groups,
                                          list(x_shape) if x_shape else None)


def conv(x8: torch.Tensor, packed: torch.Tensor, c_out: int, stride: tuple[int, int],
         padding: tuple[int, int], groups: int) -> torch.Tensor:
    """``sum x8 * w8`` of uint8 features (channels-last) and packed int8 weights, float32 output.

    Padded taps hold 0. Exact only while the int32 accumulators stay below 2^24 in magnitude
    (the caller proves it).

    oneDNN (torch 2.13) returns wrong sums for some outputs one column wide with a column stride
    above 1 (seen from five output rows on); such inputs get zero columns on the right so that
    the output is two columns wide, and the second is dropped.
    """
    extra = _one_column_fix(x8.shape[3], packed.shape[3], stride[1], padding[1])
    if extra:
        x8 = F.pad(x8, (0, extra)).contiguous(memory_format=torch.channels_last)
    ones = torch.ones(c_out, dtype=torch.float32)
    zeros = torch.zeros(c_out, dtype=torch.int64)
    y = torch.ops.onednn.qconv2d_pointwise(x8, 1.0, 0, packed, ones, zeros, None, list(stride),
                                           list(padding), [1, 1], groups, 1.0, 0,
                                           torch.float32, "none", [], "")
    return y[..., :1] if extra else y


def _one_column_fix(width: int, kernel_width: int, stride: int, padding: int) -> int:
    """Zero columns to append so that oneDNN does not see its faulty one-column geometry."""
    wide = width + 2 * padding
    if stride == 1 or (wide - kernel_width) // stride + 1 != 1:
        return 0
    return kernel_width + stride - wide


@lru_cache(maxsize=1)
def selftest() -> SelfTest:
    """Check the kernel against float64 on extreme operands (cached; run once per process).

    Catches the non-VNNI fallback that saturates pairs of uint8 x int8 products at 16 bits, and
    accumulation in float32 (partial sums beyond 2^24 that cancel to a small result).
    """
    try:
        gen = torch.Generator().manual_seed(7)
        cases = []
        # saturation: pairs of 255 * -128 or 255 * 127 exceed int16
        x = torch.full((1, 64, 3, 3), 255, dtype=torch.uint8)
        w = torch.tensor([-128, 127], dtype=torch.int8).repeat_interleave(64).reshape(2, 64, 1, 1)
        cases.append((x, w))
        x = torch.full((1, 16, 5, 5), 255, dtype=torch.uint8)
        cases.append((x, torch.full((3, 16, 3, 3), -128, dtype=torch.int8)))
        # cancellation: partial sums of about 2^25 that cancel to a small odd number
        half = torch.randint(128, 256, (2, 2048, 2, 2), generator=gen, dtype=torch.uint8)
        x = torch.cat([half, half, torch.ones((2, 1, 2, 2), dtype=torch.uint8)], 1)
        wh = torch.randint(100, 128, (4, 2048, 1, 1), generator=gen, dtype=torch.int8)
        odd = torch.tensor([1, 3, 5, 7], dtype=torch.int8).reshape(4, 1, 1, 1)
        cases.append((x, torch.cat([wh, -wh, odd], 1)))
        # a random grouped conv with stride
        x = torch.randint(0, 256, (2, 8, 9, 7), generator=gen, dtype=torch.uint8)
        cases.append((x, torch.randint(-128, 128, (4, 4, 3, 3), generator=gen, dtype=torch.int8)))
        # one output column with a column stride: the geometry conv() works around
        x = torch.randint(0, 256, (2, 8, 9, 3), generator=gen, dtype=torch.uint8)
        cases.append((x, torch.randint(-128, 128, (4, 8, 3, 2), generator=gen, dtype=torch.int8)))
        geometry = {3: ((2, 1), (1, 0)), 4: ((1, 2), (2, 0))}
        for i, (x, w) in enumerate(cases):
            groups = x.shape[1] // w.shape[1]
            stride, pad = geometry.get(i, ((1, 1), (0, 0)))
            xcl = x.contiguous(memory_format=torch.channels_last)
            packed = prepack(w, stride, pad, groups, tuple(x.shape))
            got = conv(xcl, packed, w.shape[0], stride, pad, groups)
            ref = F.conv2d(x.double(), w.double(), stride=stride, padding=pad, groups=groups)
            if not torch.equal(got.double(), ref):
                bad = int((got.double() != ref).sum())
                return SelfTest(False, f"case {i}: {bad} of {ref.numel()} sums differ from float64")
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        return SelfTest(False, f"oneDNN quantized conv unavailable: {exc}")
    return SelfTest(True, f"{len(cases)} extreme-operand cases bit-exact")


def available() -> bool:
    """True when the oneDNN uint8 x int8 kernel passed its self-test in this process."""
    return selftest().ok
