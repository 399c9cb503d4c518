"""Power figures of multipliers, always labelled with where they come from."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Power:
    """Power of one multiplier.

    Attributes:
        mw: absolute power in mW, or None when only a relative figure exists (proxies).
        relative: power relative to the exact multiplier of the same family (exact = 1.0).
        source: where the figure comes from, e.g. "MARLIN UMC 65 nm post-synthesis".
        proxy: True when the figure is an estimate (never to be shown as measured).
    """

    mw: float | None
    relative: float
    source: str
    proxy: bool = False

    def __post_init__(self) -> None:
        if not (self.relative >= 0.0):
            raise ValueError(f"Power.relative: expected a non-negative number, got {self.relative}")

    @property
    def label(self) -> str:
        """Short label for tables and plots: the source, marked when it is a proxy."""
        return f"proxy ({self.source})" if self.proxy else self.source


EXACT_POWER = Power(mw=None, relative=1.0, source="exact reference")


def partial_product_proxy(kept_fraction: float) -> Power:
    """Relative-power proxy fitted on the 13 signed EvoApprox circuits: 1.24 f - 0.19, clipped.

    Args:
        kept_fraction: fraction f of the 64 partial products the circuit keeps (0..1).
    """
    if not 0.0 <= kept_fraction <= 1.0:
        raise ValueError(f"kept_fraction: expected a value in [0, 1], got {kept_fraction}")
    rel = 1.0 if kept_fraction >= 1.0 else min(1.0, max(0.0, 1.24 * kept_fraction - 0.19))
    return Power(mw=None, relative=rel, source="partial-product fit 1.24 f - 0.19", proxy=True)


UNKNOWN_POWER = Power(mw=None, relative=1.0, proxy=True,
                      source="no power figure: assumed equal to the exact multiplier")
