"""Integer factors of an integer table through its row lattice (Hermite bases and LLL).

``E = F0.T @ G0`` with ``G0`` independent rows of ``E`` has rational ``F0`` in general (random
low-rank tables): the rows of ``E`` span a lattice that ``G0`` does not generate. A basis ``G`` of
that lattice gives integer coefficients ``F``, and LLL on the rows of one side (applying the dual
operations to the other, so ``F.T @ G`` never changes) makes the factors short. All arithmetic on
the factors is in Python integers; floats only steer the reduction, and the result is checked
exactly.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import scipy.linalg

LLL_DELTA = 0.99
MAX_SWAPS = 20_000


def integer_factors(e: np.ndarray, rows: np.ndarray,
                    reduce: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer ``(F, G)`` with ``F.T @ G == e``, LLL-reduced on side ``reduce``, else None.

    ``G`` starts as the rows ``rows`` of ``e``; whenever a row of ``e`` is not an integer
    combination of ``G``, the lattice of ``G`` grows to include it (a Hermite basis of the
    coefficients), and ``G`` is LLL-reduced again, so every number stays small.

    Args:
        e: int64 (n_x, n_w) table of rank R.
        rows: R indices of independent rows of ``e``.
        reduce: "g" (shorten the weight-side rows) or "f" (the activation-side rows).

    Returns:
        int64 F (R, n_x) and G (R, n_w), or None when they do not fit int64 or a reduction does
        not finish.
    """
    table = [[int(v) for v in row] for row in e]
    g = [table[r][:] for r in rows]
    if not _lll(g, [[] for _ in g]):
        return None
    while True:
        d, inv, cols = _pivot_inverse(g)
        coeffs = []
        for row in table:
            t = [sum(row[c] * inv[k][j] for k, c in enumerate(cols)) for j in range(len(g))]
            if any(v % d for v in t):  # not in the lattice of g: enlarge it
                h = _hermite([[d * int(i == j) for j in range(len(g))] for i in range(len(g))]
                             + [t])
                g = [[_exact_div(sum(hi[j] * g[j][c] for j in range(len(g))), d)
                      for c in range(len(row))] for hi in h]
                if not _lll(g, [[] for _ in g]):
                    return None
                break
            coeffs.append([v // d for v in t])
        else:
            break
    f = [list(col) for col in zip(*coeffs)]
    done = _lll(g, f) if reduce == "g" else _lll(f, g)
    if not done or max(abs(v) for row in f + g for v in row) >= 2**31:
        return None
    fi, gi = np.array(f, np.int64), np.array(g, np.int64)
    if np.abs(fi).max() * np.abs(gi).max() * len(g) >= 2**62 or not np.array_equal(fi.T @ gi, e):
        return None
    return fi, gi


def _pivot_inverse(g: list[list[int]]) -> tuple[int, list[list[int]], list[int]]:
    """``(d, d * inverse(g[:, cols]), cols)`` for R columns on which the rows of ``g`` are
    independent."""
    gf = np.array(g, dtype=np.float64)
    cols = [int(c) for c in scipy.linalg.qr(gf, mode="r", pivoting=True)[1][:len(g)]]
    d, inv = _scaled_inverse([[row[c] for c in cols] for row in g])
    return d, inv, cols


def _scaled_inverse(a: list[list[int]]) -> tuple[int, list[list[int]]]:
    """``(d, d * inverse(a))`` with ``d`` the least common denominator (Gauss-Jordan, exact)."""
    n = len(a)
    aug = [[Fraction(v) for v in row] + [Fraction(int(i == j)) for j in range(n)]
           for i, row in enumerate(a)]
    for i in range(n):
        piv = next(r for r in range(i, n) if aug[r][i] != 0)
        aug[i], aug[piv] = aug[piv], aug[i]
        inv = 1 / aug[i][i]
        aug[i] = [v * inv for v in aug[i]]
        for r in range(n):
            if r != i and aug[r][i] != 0:
                c = aug[r][i]
                aug[r] = [u - c * v for u, v in zip(aug[r], aug[i])]
    inverse = [row[n:] for row in aug]
    d = math.lcm(*(v.denominator for row in inverse for v in row))
    return d, [[int(v * d) for v in row] for row in inverse]


def _hermite(m: list[list[int]]) -> list[list[int]]:
    """Upper triangular basis (R, R) of the lattice spanned by the rows of ``m`` (rank R)."""
    rows = [r[:] for r in m if any(r)]
    basis = []
    for col in range(len(m[0])):
        pivot = None
        rest = []
        for r in rows:
            if r[col] == 0:
                rest.append(r)
                continue
            if pivot is None:
                pivot = r
                continue
            gcd, s, t = _egcd(pivot[col], r[col])
            a, b = pivot[col] // gcd, r[col] // gcd
            new_pivot = [s * p + t * q for p, q in zip(pivot, r)]
            other = [a * q - b * p for p, q in zip(pivot, r)]
            pivot = new_pivot
            if any(other):
                rest.append(other)
        if pivot is None:
            raise ValueError("hermite: the rows do not have full column rank")
        basis.append(pivot)
        rows = rest
    if any(any(r) for r in rows):
        raise ValueError("hermite: rows left after the last column")
    return basis


def _egcd(a: int, b: int) -> tuple[int, int, int]:
    """``(g, s, t)`` with ``s * a + t * b == g == gcd(a, b) > 0``."""
    s0, s1, t0, t1, r0, r1 = 1, 0, 0, 1, a, b
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        s0, s1 = s1, s0 - q * s1
        t0, t1 = t1, t0 - q * t1
    return (r0, s0, t0) if r0 > 0 else (-r0, -s0, -t0)


def _exact_div(a: int, b: int) -> int:
    q, r = divmod(a, b)
    if r:
        raise ArithmeticError(f"lattice: {a} is not a multiple of {b}")
    return q


def _lll(b: list[list[int]], dual: list[list[int]]) -> bool:
    """LLL-reduce the rows of ``b`` in place, applying the dual operations to ``dual``.

    ``sum_r dual[r] (x) b[r]`` stays the same: ``b[k] -= q b[j]`` goes with ``dual[j] += q
    dual[k]``, swaps with swaps. False when MAX_SWAPS is reached.
    """
    n, k, swaps = len(b), 1, 0
    bf = np.array([[float(v) for v in row] for row in b])  # steers only; b stays exact
    while k < n:
        mu, norms = _gram_schmidt(bf)
        for j in range(k - 1, -1, -1):
            q = round(mu[k, j])
            if q:
                b[k] = [u - q * v for u, v in zip(b[k], b[j])]
                dual[j] = [u + q * v for u, v in zip(dual[j], dual[k])]
                bf[k] -= q * bf[j]
                mu[k, :j + 1] -= q * mu[j, :j + 1]
        if norms[k] >= (LLL_DELTA - mu[k, k - 1] ** 2) * norms[k - 1] or norms[k - 1] == 0:
            k += 1
        else:
            b[k], b[k - 1] = b[k - 1], b[k]
            dual[k], dual[k - 1] = dual[k - 1], dual[k]
            bf[[k, k - 1]] = bf[[k - 1, k]]
            k = max(k - 1, 1)
            swaps += 1
            if swaps > MAX_SWAPS:
                return False
    return True


def _gram_schmidt(bf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mu[i, j] = <b_i, b*_j> / |b*_j|^2`` (unit diagonal) and ``|b*_j|^2`` of the rows."""
    r = np.linalg.qr(bf.T, mode="r")
    d = np.diag(r)
    mu = (r / d[:, None]).T
    return mu, d**2
