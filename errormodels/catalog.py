"""A catalog of multipliers as one stack of error tables on the operand-statistics grid."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

import hwlib
from errormodels.stats import ACT_DOMAIN, WEIGHT_DOMAIN, align
from hwlib.multiplier import Multiplier


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ErrorCatalog:
    """Error tables of M multipliers re-indexed onto ``ACT_DOMAIN x WEIGHT_DOMAIN``.

    Attributes:
        family: the catalog spec it was built from (e.g. ``"marlin:*"``).
        specs: spec string of each multiplier, (M,).
        errors: int32 (M, 256, 256), ``errors[m, x - 0, w + 128] = approx_m(x, w) - x * w``;
            0 where the multiplier does not accept the operand (see the supports).
        x_support: bool (M, 256), activation values each multiplier accepts.
        w_support: bool (M, 256), weight values each multiplier accepts.
        relative_power: float64 (M,), power relative to the exact multiplier of its family.
        power_sources: label of each multiplier's power figure (marked when a proxy).
        exact_index: index of an exact multiplier (always present, so matching never fails).
    """

    family: str
    specs: tuple[str, ...]
    errors: np.ndarray
    x_support: np.ndarray
    w_support: np.ndarray
    relative_power: np.ndarray
    power_sources: tuple[str, ...]
    exact_index: int

    def __len__(self) -> int:
        return len(self.specs)

    @cached_property
    def float_errors(self) -> np.ndarray:
        """``errors`` as float64 (M, 256, 256), computed once per catalog."""
        return self.errors.astype(np.float64)

    @cached_property
    def squared_errors(self) -> np.ndarray:
        """``errors ** 2`` as float64 (M, 256, 256), computed once per catalog."""
        return self.float_errors * self.float_errors

    @classmethod
    def build(cls, spec: str | Iterable[str | Multiplier]) -> ErrorCatalog:
        """Catalog for a spec (``"marlin:*"``, ``"evo:mul8s_*"``, a list of specs or multipliers).

        An exact multiplier is appended (``hwlib.get("exact")``) when no member is exact.
        """
        if isinstance(spec, str):
            family, mults = spec, hwlib.catalog(spec)
        else:
            mults = [hwlib.get(s) for s in spec]
            family = ",".join(m.spec for m in mults)
        if not mults:
            raise ValueError(f"ErrorCatalog: catalog spec {spec!r} names no multiplier")
        exact = [i for i, m in enumerate(mults) if m.is_exact]
        if not exact:
            mults.append(hwlib.get("exact"))
            exact = [len(mults) - 1]
        grids = [error_grid(m) for m in mults]
        return cls(
            family=family, specs=tuple(m.spec for m in mults),
            errors=np.stack([g[0] for g in grids]), x_support=np.stack([g[1] for g in grids]),
            w_support=np.stack([g[2] for g in grids]),
            relative_power=np.array([m.relative_power for m in mults], np.float64),
            power_sources=tuple(m.power.label for m in mults), exact_index=exact[0])


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
