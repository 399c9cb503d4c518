"""Term splits and their uint8 x int8 form reproduce every multiplier's table exactly."""
from __future__ import annotations

import numpy as np
import torch

import hwlib
from agn.sim import terms_for
from agn.sim.factors import network_error_table, u8s8_for
from agn.sim.features import _apply, feature_ops


def _network_table(m: hwlib.Multiplier) -> np.ndarray:
    xd = m.network_x_domain()
    return m.table()[xd.lo - m.x_domain.lo:xd.hi - m.x_domain.lo + 1]


def _check(m: hwlib.Multiplier) -> None:
    t = terms_for(m)
    want = _network_table(m)
    np.testing.assert_array_equal(t.table(), want, err_msg=m.spec)
    t8 = u8s8_for(m)
    assert t8.f8.min() >= 0 and t8.f8.max() <= 255 and t8.g8.min() >= -128 and t8.g8.max() <= 127
    np.testing.assert_array_equal((t8.f8 + t8.offset[:, None]).T @ t8.g8, want, err_msg=m.spec)
    x = torch.from_numpy(m.network_x_domain().values().astype(np.uint8))[:, None]
    for row, op in zip(t8.f8, feature_ops(t8.f8, m.network_x_domain().lo, torch.uint8)):
        got = _apply(op, x, m.network_x_domain().lo, {})[:, 0].numpy().astype(np.int64)
        np.testing.assert_array_equal(got, row, err_msg=f"{m.spec} {op}")


def test_every_marlin_level_splits_exactly():
    ranks = []
    for level in range(256):
        m = hwlib.get(f"marlin:{level}")
        _check(m)
        ranks.append(len(u8s8_for(m).f8))
    # terms of the fused conv: the exact product alone at level 0, + 4 bits + compensation at
    # 15; levels >= 128 use agn.sim.marlin_split (9 terms, 8 at 255)
    assert [ranks[lv] for lv in (0, 1, 15, 127, 128, 255)] == [1, 2, 6, 9, 9, 8]
    assert max(ranks) == 9


def test_signed_evoapprox_split_exactly_and_use_bit_features(signed_evo):
    for m in signed_evo:
        _check(m)
        assert all(op.lut is None for op in feature_ops(u8s8_for(m).f8, 0, torch.uint8)), m.spec


def test_random_low_rank_tables(random_table):
    for rank in (1, 4, 16):
        m = random_table(rank, seed=40 + rank)
        t = terms_for(m)
        assert t.rank == rank and t.source == "factorised"
        err = network_error_table(m)
        np.testing.assert_array_equal(np.round(t.table()), _network_table(m))
        assert np.abs(t.table() - _network_table(m)).max() <= t.residual + 1e-9
        assert err.any()
    assert terms_for(random_table(None, seed=3)) is None
