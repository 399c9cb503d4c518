"""pytest configuration of the agn tests: the ``blocktest`` table family (m(x, 0) != 0)."""
from __future__ import annotations

import numpy as np

import hwlib

BLOCK_FAMILY = "blocktest"


def _block_table(arg: str) -> hwlib.Multiplier:
    """Exact product plus a seeded error, with m(x, 0) != 0 and m(0, w) != 0 (like some
    EvoApprox circuits)."""
    rng = np.random.default_rng(int(arg))
    exact = np.arange(256)[:, None] * np.arange(-128, 128)[None, :]
    return hwlib.TableMultiplier(f"{BLOCK_FAMILY}:{arg}",
                                 exact + rng.integers(-200, 201, exact.shape), hwlib.UINT8,
                                 hwlib.INT8,
                                 hwlib.Power(mw=None, relative=0.5, source="test table"))


hwlib.register(BLOCK_FAMILY, _block_table)
