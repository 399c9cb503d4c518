"""MARLIN's 256-level reconfigurable 9x9 multiplier: closed form, power table and CSR 0x7D0 word."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from hwlib.domain import INT8, INT9, UINT8, Domain
from hwlib.errors import DomainError
from hwlib.multiplier import ErrorFactors, Multiplier, error_metrics_batch
from hwlib.power import Power

CSR_ADDRESS = 0x7D0
PRECISION_FULL = 0x3FFF
ENABLE_MUL, ENABLE_MAC, ENABLE_SIMD = 0x1, 0x2, 0x4
POWER_SOURCE = "MARLIN UMC 65 nm post-synthesis, 500 MHz"
N_LEVELS = 256


def check_level(level: int) -> int:
    """Return ``level`` as int after checking it is an integer in 0..255."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise DomainError(f"MARLIN level: expected an integer in 0..255, got {level!r}")
    if not 0 <= int(level) <= 255:
        raise DomainError(f"MARLIN level: expected an integer in 0..255, got {int(level)}")
    return int(level)


def compensation(level: int) -> int:
    """C_L: the constant injected for approximated columns k >= 2 (sum of 2^k)."""
    return check_level(level) & 0xFC


def approx(x: np.ndarray, y: np.ndarray, level: int) -> np.ndarray:
    """Closed form of the MARLIN product on the full 9-bit signed domain [-256, 255].

    ``x*y - sum_i b_i(y) 2^i (x8 & (L >> i)) + C_L`` when both operands are non-zero, else 0,
    with ``x8``, ``b_i(y)`` taken from the low 8 bits of the two's-complement operands.
    """
    level = check_level(level)
    xa = INT9.check(x, "x", f"marlin:{level}")
    ya = INT9.check(y, "y", f"marlin:{level}")
    xa, ya = np.broadcast_arrays(xa, ya)
    x8, y8 = xa & 0xFF, ya & 0xFF
    dropped = np.zeros(xa.shape, dtype=np.int64)
    for i in range(8):
        mask = level >> i
        if mask:
            dropped += ((y8 >> i) & 1) * ((x8 & mask) << i)
    out = xa * ya - dropped + compensation(level)
    return np.where((xa == 0) | (ya == 0), 0, out)


@lru_cache(maxsize=1)
def power_table() -> tuple[np.ndarray, np.ndarray]:
    """Per-level power (mW) and power relative to level 0, each float64 (256,)."""
    text = resources.files("hwlib").joinpath("data/marlin_level_power.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    if [int(r["level"]) for r in rows] != list(range(N_LEVELS)):
        raise ValueError("hwlib/data/marlin_level_power.csv: expected levels 0..255 in order")
    mw = np.array([float(r["power_mW"]) for r in rows])
    return mw, mw / mw[0]


class Marlin(Multiplier):
    """One level of MARLIN's multiplier, fed uint8 activations and int8 weights."""

    def __init__(self, level: int, x_domain: Domain = UINT8, w_domain: Domain = INT8) -> None:
        self.level = check_level(level)
        self.spec = f"marlin:{self.level}"
        self.x_domain, self.w_domain = x_domain, w_domain
        mw, rel = power_table()
        self.power = Power(mw=float(mw[self.level]), relative=float(rel[self.level]),
                           source=POWER_SOURCE)

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return approx(x, w, self.level)

    def factors(self) -> ErrorFactors:
        """Exact factors, rank <= 9, f in [0, 255] and g in [-128, 1].

        ``f_i(x) = x8 & (L >> i)``, ``g_i(w) = -2^i b_i(w)`` for each i with ``L >> i != 0``, and
        the compensation ``f_C(x) = C_L [x != 0]``, ``g_C(w) = [w != 0]`` when ``C_L != 0``
        (``x8``, ``b_i`` from the low 8 bits of the two's-complement operands).
        """
        xs, ws = self.x_domain.values(), self.w_domain.values()
        x8, w8 = xs & 0xFF, ws & 0xFF
        f, g = [], []
        for i in range(8):
            mask = self.level >> i
            if mask:
                f.append(x8 & mask)
                g.append(-(((w8 >> i) & 1) << i))
        c = compensation(self.level)
        if c:
            f.append(c * (xs != 0).astype(np.int64))
            g.append((ws != 0).astype(np.int64))
        shape_f, shape_g = (len(f), xs.size), (len(g), ws.size)
        return ErrorFactors(np.array(f, np.int64).reshape(shape_f),
                            np.array(g, np.int64).reshape(shape_g))

    def metrics(self) -> dict[str, float]:
        """Error metrics (see :meth:`Multiplier.metrics`), from the batched all-level path."""
        batch = level_metrics(self.x_domain, self.w_domain)
        return {k: float(v[self.level]) for k, v in batch.items()}


@lru_cache(maxsize=4)
def level_metrics(x_domain: Domain = UINT8, w_domain: Domain = INT8) -> dict[str, np.ndarray]:
    """Error metrics of all 256 levels over ``x_domain`` x ``w_domain``, each float64 (256,).

    Vectorised: the error of level L is ``-sum_k bit_k(L) D_k + C_L [x != 0][w != 0]`` with
    ``D_k = 2^k c_k`` the column-k partial-product sums, so all levels come from one matrix product.
    """
    xs, ws = x_domain.values(), w_domain.values()
    x8, w8 = (xs & 0xFF)[:, None], (ws & 0xFF)[None, :]
    cols = np.zeros((8, xs.size * ws.size))
    for i in range(8):  # weight bit i meets activation bit j = k - i in column k
        for j in range(8 - i):
            k = i + j
            cols[k] += ((((w8 >> i) & 1) * ((x8 >> j) & 1)) << k).reshape(-1)
    levels = np.arange(N_LEVELS)
    lbits = ((levels[:, None] >> np.arange(8)) & 1).astype(np.float64)
    nonzero = ((xs[:, None] != 0) & (ws[None, :] != 0)).reshape(-1).astype(np.float64)
    exact = (xs[:, None] * ws[None, :]).reshape(-1)
    parts = []
    for chunk in np.array_split(levels, 8):
        err = -(lbits[chunk] @ cols) + (chunk & 0xFC)[:, None] * nonzero[None, :]
        parts.append(error_metrics_batch(err, exact))
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    for v in out.values():
        v.setflags(write=False)
    return out


@dataclass(frozen=True)
class CsrWord:
    """Decoded fields of the CSR 0x7D0 word."""

    level: int
    enable_mul: bool
    enable_mac: bool
    enable_simd: bool
    precision_mask: int


def csr_word(level: int, enables: int = 0, precision_mask: int = PRECISION_FULL) -> int:
    """32-bit CSR 0x7D0 word for ``level``: ``(precision << 18) | ((~L & 0xFF) << 3) | enables``."""
    level = check_level(level)
    if not 0 <= enables <= 0x7:
        raise DomainError(f"csr_word enables: expected bits 0..2 only (0..7), got {enables}")
    if not 0 <= precision_mask <= 0x3FFF:
        raise DomainError(f"csr_word precision_mask: expected 0..0x3FFF, got {precision_mask:#x}")
    return (precision_mask << 18) | ((~level & 0xFF) << 3) | enables


def decode_csr_word(word: int) -> CsrWord:
    """Invert :func:`csr_word`; reserved bits 17:11 must be clear."""
    if not 0 <= word <= 0xFFFFFFFF:
        raise DomainError(f"decode_csr_word: expected a 32-bit unsigned word, got {word}")
    if word & 0x3F800:
        raise DomainError(f"decode_csr_word: reserved bits 17:11 set in {word:#010x}")
    return CsrWord(level=(~(word >> 3)) & 0xFF, enable_mul=bool(word & ENABLE_MUL),
                   enable_mac=bool(word & ENABLE_MAC), enable_simd=bool(word & ENABLE_SIMD),
                   precision_mask=word >> 18)
