"""Shared helpers for the engine tests: random layers, test multipliers, exact comparison."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hwlib
from hwlib import INT8, UINT8, Domain, Power, TableMultiplier, cmodel

PROXY = Power(mw=None, relative=1.0, source="test table")


def _signed_evo() -> list[hwlib.Multiplier]:
    """The 13 signed EvoApprox aliases of the AGN search space."""
    ms = hwlib.catalog("evo:mul8s_*")
    assert len(ms) == 13
    return ms


def _random_table(rank: int | None, seed: int, x_domain: Domain = UINT8,
                            scale: int = 3, name: str = "rand") -> TableMultiplier:
    """Exact product plus a random integer error table of the given rank (None: full rank)."""
    rng = np.random.default_rng(seed)
    nx, nw = x_domain.size, INT8.size
    if rank is None:
        err = rng.integers(-300, 301, (nx, nw))
    else:
        err = rng.integers(-scale, scale + 1, (rank, nx)).T @ rng.integers(-scale, scale + 1,
                                                                           (rank, nw))
    exact = x_domain.values()[:, None] * INT8.values()[None, :]
    return TableMultiplier(f"test:{name}{rank}-{seed}", exact + err, x_domain, INT8, PROXY)


def _random_layer(gen: torch.Generator, m: hwlib.Multiplier, n: int, c: int, h: int, w: int,
                 cout: int, k: tuple[int, int], groups: int = 1,
                 w_lo: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random activations in m's network domain and random weights in its weight domain."""
    xd = m.network_x_domain()
    x = torch.randint(xd.lo, xd.hi + 1, (n, c, h, w), generator=gen)
    wl = m.w_domain.lo if w_lo is None else w_lo
    wt = torch.randint(wl, m.w_domain.hi + 1, (cout, c // groups, *k), generator=gen)
    return x, wt


def _assert_exact(got: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    """Bit-exact equality, reporting the number of mismatching accumulators."""
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    assert got.dtype in (torch.int32, torch.int64), f"{what}: dtype {got.dtype}"
    bad = int((got.long() != ref.long()).sum())
    assert bad == 0, f"{what}: {bad} of {ref.numel()} accumulators differ from the reference"


@pytest.fixture
def signed_evo() -> list[hwlib.Multiplier]:
    return _signed_evo()


@pytest.fixture
def random_table():
    return _random_table


@pytest.fixture
def random_layer():
    return _random_layer


@pytest.fixture
def assert_exact():
    return _assert_exact


@pytest.fixture(scope="session")
def compiler_found() -> bool:
    """Whether the system C compiler that the compiled kernels need is found."""
    try:
        cmodel.compiler()
    except cmodel.CModelError:
        return False
    return True


@pytest.fixture
def c_compiler(compiler_found: bool) -> None:
    """Skips a test of a compiled kernel when no C compiler is found (the fallbacks are tested
    without one)."""
    if not compiler_found:
        pytest.skip("no C compiler")
