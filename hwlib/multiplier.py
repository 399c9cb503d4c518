"""The Multiplier base class: declared operand domains, one vectorised hook, derived tables
and metrics."""
from __future__ import annotations

import abc
import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hwlib.domain import INT8, UINT8, Domain
from hwlib.power import EXACT_POWER, Power


@dataclass(frozen=True)
class ErrorFactors:
    """Exact integer factorisation of a multiplier's error table.

    ``error[ix, iw] == sum_r f[r, ix] * g[r, iw]`` for every table index pair, where ``ix`` and
    ``iw`` index the activation and weight domains (``value - domain.lo``).

    Attributes:
        f: int64 array (R, n_x), activation features.
        g: int64 array (R, n_w), weight features.
    """

    f: np.ndarray
    g: np.ndarray

    @property
    def rank(self) -> int:
        """Number of terms R."""
        return int(self.f.shape[0])

    @property
    def f_range(self) -> tuple[int, int]:
        """(min, max) over all activation features, (0, 0) at rank 0."""
        return int(self.f.min(initial=0)), int(self.f.max(initial=0))

    @property
    def g_range(self) -> tuple[int, int]:
        """(min, max) over all weight features, (0, 0) at rank 0."""
        return int(self.g.min(initial=0)), int(self.g.max(initial=0))

    def error_table(self) -> np.ndarray:
        """The error table the factors reproduce, int64 (n_x, n_w)."""
        return self.f.T.astype(np.int64) @ self.g.astype(np.int64)


class Multiplier(abc.ABC):
    """An approximate (or exact) integer multiplier ``approx(x, w)``.

    ``x`` is the activation operand, ``w`` the weight operand. Subclasses set ``spec``,
    ``x_domain``, ``w_domain`` and ``power`` and implement :meth:`_eval`; the table, error table
    and metrics derive from it.
    """

    spec: str
    x_domain: Domain = UINT8
    w_domain: Domain = INT8
    power: Power = EXACT_POWER

    @abc.abstractmethod
    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Approximate products of int64 arrays already checked against the domains."""

    # ---- public evaluation -------------------------------------------------------------
    def __call__(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Approximate products of integer arrays (numpy broadcasting), as int64."""
        xa = self.x_domain.check(x, "x", self.spec)
        wa = self.w_domain.check(w, "w", self.spec)
        xa, wa = np.broadcast_arrays(xa, wa)
        return np.asarray(self._eval(xa, wa), dtype=np.int64)

    @property
    def name(self) -> str:
        """Human-readable name (the spec string)."""
        return self.spec

    @property
    def power_mw(self) -> float | None:
        """Absolute power in mW (None for proxies and the abstract exact reference)."""
        return self.power.mw

    @property
    def relative_power(self) -> float:
        """Power relative to the exact multiplier of the same family."""
        return self.power.relative

    def table(self) -> np.ndarray:
        """Full table over the domains, int64 (x_domain.size, w_domain.size), read-only."""
        return self._table

    @cached_property
    def _table(self) -> np.ndarray:
        xs = self.x_domain.values()[:, None]
        ws = self.w_domain.values()[None, :]
        t = np.asarray(self._eval(*np.broadcast_arrays(xs, ws)), dtype=np.int64)
        t.setflags(write=False)
        return t

    def fingerprint(self) -> str:
        """SHA-256 of the domains and the table: identifies a circuit independently of its name."""
        h = hashlib.sha256(f"{self.x_domain.lo},{self.x_domain.hi};{self.w_domain.lo},"
                           f"{self.w_domain.hi};".encode())
        h.update(np.ascontiguousarray(self.table(), dtype="<i8").tobytes())
        return h.hexdigest()

    def exact_table(self) -> np.ndarray:
        """Exact products over the domains, int64 (x_domain.size, w_domain.size)."""
        return self.x_domain.values()[:, None] * self.w_domain.values()[None, :]

    def error_table(self) -> np.ndarray:
        """``approx - exact`` over the domains, int64."""
        return self.table() - self.exact_table()

    def factors(self) -> ErrorFactors | None:
        """Exact low-rank integer factorisation of the error table, when the family has one."""
        return None

    def metrics(self) -> dict[str, float]:
        """Error metrics over all domain pairs (uniform inputs), defined in docs/multipliers.md.

        Keys: ``mae_pct``, ``wce_pct``, ``mre_pct``, ``ep_pct``, ``mse``, ``mean``, ``std``.
        """
        return dict(self._metrics)

    @cached_property
    def _metrics(self) -> dict[str, float]:
        return error_metrics(self.error_table(), self.exact_table())

    @property
    def is_exact(self) -> bool:
        """True when every product is exact."""
        return not np.any(self.error_table())

    def network_x_domain(self) -> Domain:
        """Activations a uint8 network can feed this multiplier (its x domain within 0..255)."""
        return self.x_domain.intersect(0, 255)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def error_metrics(err: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """MAE%, WCE%, MRE%, EP%, MSE, mean and std of an error table against its exact products."""
    batch = error_metrics_batch(np.asarray(err).reshape(1, -1), exact)
    return {k: float(v[0]) for k, v in batch.items()}


def error_metrics_batch(err: np.ndarray, exact: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`error_metrics` of many error tables at once.

    Args:
        err: (B, ...) error tables, each the shape of ``exact``.
        exact: exact products, any shape.

    Returns:
        The metric keys of :func:`error_metrics`, each a float64 array (B,).
    """
    ex = np.asarray(exact).reshape(-1)
    e = np.asarray(err, dtype=np.float64).reshape(-1, ex.size)
    ae = np.abs(e)
    nz = ex != 0
    inv = np.where(nz, 1.0 / np.where(nz, np.abs(ex), 1), 0.0)
    mean = e.mean(axis=1)
    mse = np.einsum("ij,ij->i", e, e) / ex.size
    return {
        "mae_pct": ae.mean(axis=1) / 2**16 * 100,
        "wce_pct": ae.max(axis=1) / 2**16 * 100,
        "mre_pct": (ae @ inv) / max(int(nz.sum()), 1) * 100,
        "ep_pct": (e != 0).mean(axis=1) * 100,
        "mse": mse,
        "mean": mean,
        "std": np.sqrt(np.maximum(mse - mean * mean, 0.0)),
    }


class Exact(Multiplier):
    """The exact multiplier over uint8 activations and int8 weights."""

    def __init__(self, spec: str = "exact", x_domain: Domain = UINT8, w_domain: Domain = INT8,
                 power: Power = EXACT_POWER) -> None:
        self.spec, self.x_domain, self.w_domain, self.power = spec, x_domain, w_domain, power

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x * w

    def factors(self) -> ErrorFactors:
        return ErrorFactors(np.zeros((0, self.x_domain.size), np.int64),
                            np.zeros((0, self.w_domain.size), np.int64))


class TableMultiplier(Multiplier):
    """A multiplier given by its full table (from a file, an array or a compiled C model)."""

    def __init__(self, spec: str, table: np.ndarray, x_domain: Domain, w_domain: Domain,
                 power: Power) -> None:
        from hwlib.errors import TableError

        t = np.asarray(table)
        if t.shape != (x_domain.size, w_domain.size):
            raise TableError(
                f"table for {spec}: expected shape {(x_domain.size, w_domain.size)} "
                f"({x_domain.name} x {w_domain.name}), got {t.shape}")
        if t.dtype.kind not in "iu":
            raise TableError(f"table for {spec}: expected an integer dtype, got {t.dtype}")
        self.spec, self.x_domain, self.w_domain, self.power = spec, x_domain, w_domain, power
        self._tab = t.astype(np.int64)
        self._tab.setflags(write=False)

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self._tab[self.x_domain.index(x), self.w_domain.index(w)]
