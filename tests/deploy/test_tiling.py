"""The tiling plan: every tile within one core's L1 slice, tiles cover each output once."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.memplan import PlanError
from deploy.tiling import Window, check_tiling, plan_tiling


def _target(l1: int) -> deploy.Target:
    return dataclasses.replace(deploy.default_target(), l1_bytes=l1)


@pytest.mark.parametrize("l1", [65536, 8 * 1024, 8 * 256])
def test_tiles_fit_l1_and_cover_every_output_once(l1) -> None:
    nets = [zoo.lenet5(0), zoo.resnet8(1), *(zoo.random_network(s) for s in range(60))]
    for net in nets:
        plan = plan_tiling(net, _target(l1))
        for t in plan.layers:
            if not t.tiled:                         # a tiny L1 may not hold one row of fc1
                assert t.op in ("flatten", "requant") or (l1 < 65536 and "smallest tile" in t.note)
                continue
            # every tile's regions fit one buffer set; two sets and the scratch fit the slice
            sizes = [t.regions_of(*tile) for tile in t.tiles()]
            assert tuple(max(r[i] for r in sizes) for i in range(3)) == t.regions
            assert t.l1_bytes == t.sets * sum(t.regions) + t.scratch_bytes <= plan.core_l1_bytes
            cover = np.zeros((t.rows, t.channels), int)
            for r0, r1, c0, c1 in t.tiles():
                cover[r0:r1, c0:c1] += 1
                assert (c0 % t.channel_step, (c1 - c0) % t.channel_step) == (0, 0)
            assert (cover == 1).all()


def test_window_halo_of_stride_two_is_clipped_to_the_image() -> None:
    w = Window(stride=2, kernel=3, pad=1, height=16)
    assert w.rows(0, 1) == (0, 2)                   # top padding row is not fetched
    assert w.rows(3, 5) == (5, 10)                  # rows 5..9 feed output rows 3, 4
    assert w.rows(7, 8) == (13, 16)                 # bottom padding row is not fetched


def _dw_net(groups: int) -> deploy.Network:
    rq = deploy.Requant([1 << 14] * 6, [15] * 6)
    x = deploy.Input(name="x", shape=(6, 9, 7), scale=1.0, zero_point=3, mean=None, std=None)
    dw = deploy.Conv(name="dw", input="x", weight=np.ones((6, 6 // groups, 3, 3), np.int8),
                     bias=[0] * 6, multiplier="exact", requant=rq, stride=2, padding=1,
                     groups=groups)
    return deploy.Network((x, dw, deploy.Flatten(name="f", input="dw")), name="dw")


def test_tiny_l1_gives_one_row_depthwise_tiles() -> None:
    net = _dw_net(6)
    # smallest tile: two sets of 3 input rows x 7 x 1 channel (21 -> 24 aligned), 9 weights
    # (-> 12) and 4 outputs, + two 9-byte im2col columns (-> 2 x 12) = 104 B; the next, 2 rows
    # or 2 channels, need 136 B and 168 B
    t = plan_tiling(net, _target(8 * 112)).layer("dw")
    assert (t.tile_rows, t.tile_channels, t.n_tiles, t.l1_bytes, t.sets) == (1, 1, 5 * 6, 104, 2)
    assert (t.regions, t.scratch_bytes, t.n_steps) == ((24, 12, 4), 24, 30)
    # below 104 B single buffered: one set of 24 + 12 + 4 and the 24 B im2col = 64 B
    t = plan_tiling(net, _target(8 * 64)).layer("dw")
    assert (t.tile_rows, t.tile_channels, t.l1_bytes, t.sets) == (1, 1, 64, 1)
    with pytest.raises(PlanError, match=r"node 'dw' \(conv\) needs 64 B of L1 for its smallest "
                                        r"tile \(1 row x 1 channel\(s\), single buffered\), "
                                        r"expected at most the 56 B"):
        plan_tiling(net, _target(8 * 63), strict=True)     # slices are 8-byte aligned
    assert "needs 64 B" in plan_tiling(net, _target(8 * 56)).layer("dw").note


def test_grouped_conv_tiles_whole_groups() -> None:
    net = _dw_net(3)                                 # 2 input and 2 output channels per group
    for l1 in (8 * 128, 8 * 240, 8 * 600, 65536):
        t = plan_tiling(net, _target(l1)).layer("dw")
        assert t.channel_step == 2 and t.tile_channels % 2 == 0


def test_check_tiling_refuses_a_split_group_and_an_oversized_tile() -> None:
    net = _dw_net(3)
    plan = plan_tiling(net)
    split = dataclasses.replace(plan.layer("dw"), tile_channels=3)
    with pytest.raises(PlanError, match="3 channels per tile, expected a multiple of the "
                                        "group's 2"):
        check_tiling(dataclasses.replace(plan, layers=(split, plan.layers[1])), net)
    big = plan_tiling(zoo.resnet8(0))
    with pytest.raises(PlanError, match="expected at most the 2048 B L1 slice per core"):
        check_tiling(dataclasses.replace(big, l1_bytes=big.l1_bytes // 4), zoo.resnet8(0))


def test_plan_summary_and_document() -> None:
    plan = plan_tiling(zoo.resnet8(0))
    assert plan.summary().startswith("tiling plan: 14 tiled layers")
    doc = plan.to_json()
    assert doc["core_l1_bytes"] == 8192 and len(doc["layers"]) == 15
    assert all(l["l1_bytes"] <= 8192 for l in doc["layers"])
