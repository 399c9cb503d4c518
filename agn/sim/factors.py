"""Term splits of a multiplier: ``m(x, w) == sum_r f[r, x] * g[r, w]`` (integer or rounded)."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from agn.sim import lattice
from hwlib import Multiplier

MAX_FACTOR_RANK = 16  # beyond this many error terms the gather path is faster


@dataclass(frozen=True)
class Terms:
    """A split of a multiplier into products of operand features.

    ``m(x, w) == sum_r f[r, x - x_lo] * g[r, w - w_lo]`` for every activation ``x`` of the network
    domain and every weight ``w``; term 0 is the exact product (``f[0] = x``, ``g[0] = w``), terms
    1..R reproduce the error table. Integer features (int64 ``f``) are exact; float64 features
    (a factorisation with non-integer coefficients) miss the table by at most ``residual`` per
    product, so a sum computed from them is exact only after rounding under a proven error bound.

    Attributes:
        f: int64 or float64 (R + 1, n_x) activation features over ``m.network_x_domain()``.
        g: int64 (R + 1, n_w) weight features over ``m.w_domain``.
        source: "exact", "structured" (the family's own factors) or "factorised" (computed here).
        residual: bound on ``|sum_r f g - m|`` per product (0.0 for integer features).
    """

    f: np.ndarray
    g: np.ndarray
    source: str
    residual: float = 0.0

    @property
    def integral(self) -> bool:
        """True when the features are integers (sums are exact without rounding)."""
        return self.f.dtype.kind == "i"

    @property
    def rank(self) -> int:
        """Number of error terms R."""
        return int(self.f.shape[0]) - 1

    def table(self) -> np.ndarray:
        """``m(x, w)`` the terms reproduce (float64 when not integral), (n_x, n_w)."""
        return self.f.T @ self.g


@dataclass(frozen=True)
class U8S8Terms:
    """Terms rewritten for a uint8 x int8 kernel: ``f == f8 + offset[:, None]``, ``g == g8``.

    Attributes:
        f8: int64 (R + 1, n_x), every entry in 0..255.
        g8: int64 (R + 1, n_w), every entry in -128..127.
        offset: int64 (R + 1,), removed from each activation feature (added back per output).
    """

    f8: np.ndarray
    g8: np.ndarray
    offset: np.ndarray


def network_error_table(m: Multiplier) -> np.ndarray:
    """``m``'s error table restricted to the network activation domain, int64 (n_x, n_w)."""
    xd = m.network_x_domain()
    start = xd.lo - m.x_domain.lo
    return m.error_table()[start:start + xd.size]


_TERMS: weakref.WeakKeyDictionary[Multiplier, Terms | None] = weakref.WeakKeyDictionary()
_RANKS: weakref.WeakKeyDictionary[Multiplier, int] = weakref.WeakKeyDictionary()
_U8S8: weakref.WeakKeyDictionary[Multiplier, U8S8Terms | None] = weakref.WeakKeyDictionary()


def error_rank(m: Multiplier) -> int:
    """Rank of ``m``'s error table over the network domain (cached per multiplier)."""
    if m not in _RANKS:
        e = network_error_table(m)
        _RANKS[m] = int(np.linalg.matrix_rank(e.astype(np.float64))) if e.any() else 0
    return _RANKS[m]


def terms_for(m: Multiplier) -> Terms | None:
    """The term split of ``m`` with at most MAX_FACTOR_RANK error terms, else None (cached)."""
    if m not in _TERMS:
        _TERMS[m] = _build_terms(m)
    return _TERMS[m]


def u8s8_for(m: Multiplier) -> U8S8Terms | None:
    """The shortest verified uint8 x int8 split of ``m`` (cached per multiplier).

    :func:`u8s8_terms` of ``terms_for(m)``, or for MARLIN levels >= 128 the shorter split of
    :mod:`agn.sim.marlin_split` when it reproduces the table exactly.
    """
    if m not in _U8S8:
        from agn.sim.marlin_split import marlin_u8s8
        from hwlib.marlin import Marlin

        t = terms_for(m)
        best = None if t is None else u8s8_terms(t)
        short = marlin_u8s8(m) if isinstance(m, Marlin) else None
        if short is not None and (best is None or len(short.f8) < len(best.f8)):
            start = m.network_x_domain().lo - m.x_domain.lo
            table = m.table()[start:start + short.f8.shape[1]]
            if np.array_equal((short.f8 + short.offset[:, None]).T @ short.g8, table):
                best = short
        _U8S8[m] = best
    return _U8S8[m]


def _build_terms(m: Multiplier) -> Terms | None:
    xs, ws = m.network_x_domain().values(), m.w_domain.values()
    err = network_error_table(m)
    exact_f, exact_g = xs[None], ws[None]
    if not err.any():
        return Terms(f=exact_f, g=exact_g, source="exact")
    fac = m.factors()
    if fac is not None and fac.rank <= MAX_FACTOR_RANK:
        start = m.network_x_domain().lo - m.x_domain.lo
        f = np.asarray(fac.f, np.int64)[:, start:start + xs.size]
        g = np.asarray(fac.g, np.int64)
        keep = f.any(axis=1) & g.any(axis=1)
        if np.array_equal(f[keep].T @ g[keep], err):
            return Terms(f=np.concatenate([exact_f, f[keep]]),
                         g=np.concatenate([exact_g, g[keep]]), source="structured")
    split = factorise_table(err, MAX_FACTOR_RANK)
    if split is None:
        return None
    f, g, residual = split
    return Terms(f=np.concatenate([exact_f.astype(f.dtype), f]), g=np.concatenate([exact_g, g]),
                 source="factorised", residual=residual)


def factorise_table(err: np.ndarray, max_rank: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Factors ``(F, G, residual)`` with ``|F.T @ G - err| <= residual`` elementwise.

    ``G`` holds independent rows of ``err`` (each divided by its gcd), ``F`` the coefficients
    expressing every row in them: int64 and ``residual == 0`` when they are all integers
    (verified exactly). Otherwise ``G`` is a short basis of the lattice the rows span and ``F``
    their integer coefficients in it (:mod:`agn.sim.lattice`), and only when that fails float64
    coefficients with a rigorous bound on the float64 reconstruction error. None when the rank
    exceeds ``max_rank`` or the residual is not below 1/16.

    Args:
        err: int64 (n_x, n_w) error table.
        max_rank: largest number of terms worth returning.
    """
    e = np.asarray(err, np.int64)
    ef = e.astype(np.float64)
    rank = int(np.linalg.matrix_rank(ef))
    if rank == 0 or rank > max_rank:
        return None
    rows = scipy.linalg.qr(ef.T, mode="r", pivoting=True)[1][:rank]
    g = e[np.sort(rows)]
    g = g // np.gcd.reduce(np.abs(g), axis=1)[:, None]
    cols = scipy.linalg.qr(g.astype(np.float64), mode="r", pivoting=True)[1][:rank]
    ft = np.linalg.solve(g[:, cols].astype(np.float64).T, ef[:, cols].T)  # (rank, n_x)
    fi = np.round(ft)
    if np.abs(fi).max() < 2**40:
        f = fi.astype(np.int64)
        if np.abs(f).max() * np.abs(g).max() * rank < 2**62 and np.array_equal(f.T @ g, e):
            return f, g, 0.0
    # rational coefficients: integer ones in a basis of the rows' lattice, the shorter side
    splits = [s for s in (lattice.integer_factors(e, np.sort(rows), side) for side in "gf") if s]
    if splits:
        f, g = min(splits, key=lambda s: float(np.abs(s[0]).max(axis=1).astype(np.float64)
                                                @ np.abs(s[1]).max(axis=1)))
        return f, g, 0.0
    gf = g.astype(np.float64)
    # |fl(F.T @ G) - F.T @ G| <= gamma_rank * |F|.T @ |G| (Higham, Thm 3.5); add it to the residual.
    u = 2.0**-53
    gamma = rank * u / (1 - rank * u)
    residual = float((np.abs(ft.T @ gf - ef) + 2 * gamma * (np.abs(ft).T @ np.abs(gf))).max())
    return (ft, g, residual) if residual < 1 / 16 else None


def u8s8_terms(t: Terms) -> U8S8Terms | None:
    """``t`` with activation features shifted into 0..255 and weight features in int8, else None.

    A common factor may move from one side of a term to the other (``C * [x != 0] * [w != 0]``
    keeps ``C`` on the activation side).
    """
    f8, g8, off = [], [], []
    for f, g in zip(t.f, t.g):
        if f.dtype.kind != "i":
            return None
        fits = [(fs, gs) for fs, gs in _rescalings(f, g)
                if int(fs.max()) - int(fs.min()) <= 255 and gs.min() >= -128 and gs.max() <= 127]
        if not fits:
            return None
        # prefer features that start at 0: no offset to correct, and bit forms stay recognisable
        fs, gs = min(fits, key=lambda p: int(p[0].min()) != 0)
        lo = int(fs.min())
        f8.append(fs - lo), g8.append(gs), off.append(lo)
    return _merge_equal_features(f8, g8, off)


def _merge_equal_features(f8: list, g8: list, off: list) -> U8S8Terms:
    """Add up the weight features of terms with equal activation features (if int8 holds it)."""
    keep: list[int] = []
    for i in range(len(f8)):
        for j in keep:
            total = g8[j] + g8[i]
            if off[i] == off[j] and np.array_equal(f8[i], f8[j]) and total.min() >= -128 \
                    and total.max() <= 127:
                g8[j] = total
                break
        else:
            keep.append(i)
    return U8S8Terms(np.array([f8[i] for i in keep], np.int64),
                     np.array([g8[i] for i in keep], np.int64),
                     np.array([off[i] for i in keep], np.int64))


def _rescalings(f: np.ndarray, g: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    gg, gf = int(np.gcd.reduce(np.abs(g))), int(np.gcd.reduce(np.abs(f)))
    out = [(f, g)]
    if gg > 1:
        out.append((f * gg, g // gg))
    if gf > 1:
        out.append((f // gf, g * gf))
    return out + [(-a, -b) for a, b in out]
