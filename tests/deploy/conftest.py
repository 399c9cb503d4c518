"""pytest configuration of the deploy tests: a registered non-MARLIN table multiplier, a picker."""
from __future__ import annotations

import numpy as np
import pytest

import hwlib

TABLE_FAMILY = "deploytest"


def _table_multiplier(arg: str) -> hwlib.Multiplier:
    """A seeded random-error table with m(0, w) != 0 and m(x, 0) != 0 (like some EvoApprox)."""
    rng = np.random.default_rng(int(arg))
    exact = np.arange(256)[:, None] * np.arange(-128, 128)[None, :]
    table = exact + rng.integers(-300, 301, size=exact.shape)
    return hwlib.TableMultiplier(f"{TABLE_FAMILY}:{arg}", table, hwlib.UINT8, hwlib.INT8,
                                 hwlib.Power(mw=None, relative=0.5, source="test table",
                                             proxy=True))


hwlib.register(TABLE_FAMILY, _table_multiplier)


def mixed_picker(rng: np.random.Generator) -> str:
    """Mostly random MARLIN levels, sometimes exact or a table multiplier."""
    u = rng.random()
    if u < 0.1:
        return "exact"
    if u < 0.25:
        return f"{TABLE_FAMILY}:{int(rng.integers(0, 3))}"
    return f"marlin:{int(rng.integers(0, 256))}"


@pytest.fixture(name="mixed_picker")
def _mixed_picker_fixture():
    """The spec picker :func:`mixed_picker`, for tests that build random networks."""
    return mixed_picker
