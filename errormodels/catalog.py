"""A catalog of multipliers as one stack of error tables on the operand-statistics grid."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from errormodels.stats import ACT_DOMAIN, WEIGHT_DOMAIN, align
from hwlib.catalogs import Catalog
from hwlib.multiplier import Multiplier


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ErrorCatalog:
    """Error tables of a catalog's M members re-indexed onto ``ACT_DOMAIN x WEIGHT_DOMAIN``.

    Attributes:
        catalog: the catalog (members in its order, an exact one always present).
        errors: int32 (M, 256, 256), ``errors[m, x - 0, w + 128] = approx_m(x, w) - x * w``;
            0 where the multiplier does not accept the operand (see the supports).
        x_support: bool (M, 256), activation values each multiplier accepts.
        w_support: bool (M, 256), weight values each multiplier accepts.
    """

    catalog: Catalog
    errors: np.ndarray
    x_support: np.ndarray
    w_support: np.ndarray

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def family(self) -> str:
        """The catalog spec it was built from (e.g. ``"marlin:*"``)."""
        return self.catalog.spec

    @property
    def specs(self) -> tuple[str, ...]:
        """Spec string of each multiplier, (M,)."""
        return self.catalog.specs

    @cached_property
    def relative_power(self) -> np.ndarray:
        """float64 (M,), power relative to the exact multiplier of each family."""
        return np.array(self.catalog.relative_power, np.float64)

    @property
    def power_sources(self) -> tuple[str, ...]:
        """Label of each multiplier's power figure (marked when a proxy)."""
        return self.catalog.power_sources

    @property
    def exact_index(self) -> int:
        """Index of an exact multiplier (always present, so matching never fails)."""
        return self.catalog.exact_index

    @cached_property
    def float_errors(self) -> np.ndarray:
        """``errors`` as float64 (M, 256, 256), computed once per catalog."""
        return self.errors.astype(np.float64)

    @cached_property
    def squared_errors(self) -> np.ndarray:
        """``errors ** 2`` as float64 (M, 256, 256), computed once per catalog."""
        return self.float_errors * self.float_errors

    @classmethod
    def build(cls, spec: str | Catalog | Iterable[str | Multiplier]) -> ErrorCatalog:
        """Error tables of a catalog (a spec such as ``"marlin:*"``, a list of specs or
        multipliers, or a :class:`hwlib.Catalog`; see :meth:`hwlib.Catalog.build`)."""
        cat = Catalog.build(spec)
        grids = [error_grid(m) for m in cat.members]
        return cls(catalog=cat, errors=np.stack([g[0] for g in grids]),
                   x_support=np.stack([g[1] for g in grids]),
                   w_support=np.stack([g[2] for g in grids]))


def error_grid(m: Multiplier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One multiplier's error table on the statistics grid.

    Returns:
        ``(errors int32 (256, 256), x_support bool (256,), w_support bool (256,))``: row ``x``
        and column ``w + 128`` hold ``approx(x, w) - x * w`` when ``x`` is in ``m.x_domain`` and
        ``w`` in ``m.w_domain``, else 0.
    """
    err = m.error_table()
    if np.abs(err).max(initial=0) >= 2**31:
        raise ValueError(f"ErrorCatalog: errors of {m.spec} exceed int32 (max |e| = "
                         f"{int(np.abs(err).max())})")
    rows = align(err.T, m.x_domain, ACT_DOMAIN, strict=False).T
    grid = align(rows, m.w_domain, WEIGHT_DOMAIN, strict=False)
    xs = align(np.ones(m.x_domain.size, bool), m.x_domain, ACT_DOMAIN, strict=False)
    ws = align(np.ones(m.w_domain.size, bool), m.w_domain, WEIGHT_DOMAIN, strict=False)
    return grid.astype(np.int32), xs, ws
