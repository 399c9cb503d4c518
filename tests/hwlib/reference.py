"""Slow, obvious per-pair references for the multiplier families (plain Python integers)."""
from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np


def bit(v: int, i: int) -> int:
    """Bit i of the 8-bit two's-complement pattern of v."""
    return ((v & 0xFF) >> i) & 1


def pp_sum(a: int, b: int, keep: Callable[[int, int], bool], signed: bool) -> int:
    """sum over kept (i, j) of w_ij a_i b_j 2^(i+j), i = bit of a, j = bit of b.

    See docs/multipliers.md."""
    total = 0
    for i in range(8):
        for j in range(8):
            if keep(i, j):
                w = -1 if signed and ((i == 7) != (j == 7)) else 1
                total += w * bit(a, i) * bit(b, j) * 2 ** (i + j)
    return total


def bam(a: int, b: int, v: int, h: int, signed: bool) -> int:
    return pp_sum(a, b, lambda i, j: i >= h and i + j >= v, signed)


def tm(a: int, b: int, k: int) -> int:
    return (a // 2**k) * 2**k * (b // 2**k) * 2**k


def trunc(a: int, b: int, k: int, comp: bool) -> int:
    c = 0
    if comp:
        dropped = sum(Fraction(2 ** (i + j), 4) for i in range(8) for j in range(8) if i + j < k)
        c = math.floor(dropped + Fraction(1, 2))
    return pp_sum(a, b, lambda i, j: i + j >= k, False) + c


def perf(a: int, b: int, m: int, s: int) -> int:
    return a * sum(bit(b, j) * 2**j for j in range(8) if not s <= j < s + m)


def drum(a: int, b: int, k: int) -> int:
    def d(v: int) -> int:
        if v < 2**k:
            return v
        p = v.bit_length() - k
        return ((v >> p) | 1) << p
    return d(a) * d(b)


def mitchell(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    k1, k2 = a.bit_length() - 1, b.bit_length() - 1
    s = (a - 2**k1) * 2**k2 + (b - 2**k2) * 2**k1
    return 2 ** (k1 + k2) + s if s < 2 ** (k1 + k2) else 2 * s


def roba(a: int, b: int) -> int:
    def r(v: int) -> int:
        if v == 0:
            return 0
        lo = 2 ** (v.bit_length() - 1)
        return lo if v - lo < 2 * lo - v else 2 * lo  # ties go up
    return r(a) * b + a * r(b) - r(a) * r(b)


def roup(a: int, b: int, r: int, p: int) -> int:
    def rnd(v: int, n: int) -> int:
        return math.floor(v / 2**n + 0.5) * 2**n  # exact in binary floating point here
    return rnd(a, r) * rnd(b, 2 * p)


def sign_magnitude(circuit: Callable[[int, int], int]) -> Callable[[int, int], int]:
    """Network form of an unsigned per-pair reference."""
    return lambda x, w: circuit(x, w) if w >= 0 else -circuit(x, -w)


def table(fn: Callable[[int, int], int], xs: np.ndarray, ws: np.ndarray) -> np.ndarray:
    """fn over every pair (slow), int64 (len(xs), len(ws))."""
    return np.array([[fn(int(x), int(w)) for w in ws] for x in xs], dtype=np.int64)
