"""The memory plan: liveness-reused arena offsets, no overlap of live buffers, L3 placement."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.memplan import PlanError, check_plan, lifetimes, parameter_bytes, plan_memory


def _nets():
    yield zoo.lenet5(0)
    yield zoo.resnet8(1)
    for seed in range(300):
        yield zoo.random_network(seed)


def test_no_two_live_buffers_overlap_over_random_graphs() -> None:
    residual = 0
    for net in _nets():
        plan = plan_memory(net)
        residual += any(n.op == "add" for n in net.nodes)
        for i, a in enumerate(plan.buffers):
            assert a.offset % plan.align == 0 and a.end <= plan.arena_bytes
            for b in plan.buffers[i + 1:]:
                if a.first <= b.last and b.first <= a.last:
                    assert a.end <= b.offset or b.end <= a.offset, (net.name, a, b)
        # Liveness by brute force: a buffer lives from its writer to its last reader.
        for b in plan.buffers:
            readers = [i for i, n in enumerate(net.nodes) if b.name in n.inputs]
            last = (len(net.nodes) - 1 if b.name == net.output.name
                    else max(readers, default=b.first))
            assert (b.first, b.last) == (net.nodes.index(net.node(b.name)), last)
        assert plan.live_peak_bytes <= plan.arena_bytes <= plan.unplanned_bytes + 8 * len(net.nodes)
    assert residual > 50                        # the property covered many residual adds


def test_residual_input_stays_live_until_the_add() -> None:
    net = zoo.resnet8(0)
    live = lifetimes(net)
    assert live["conv1"] == (1, 4)              # read by block1_conv1 and block1_add
    plan = plan_memory(net)
    conv1, add = plan.buffer("conv1"), plan.buffer("block1_add")
    for name in ("block1_conv1", "block1_conv2"):
        assert not plan.buffer(name).overlaps(conv1)
    assert not add.overlaps(plan.buffer("block1_conv2"))
    # 3 buffers of 16 kB are live at block1_add (conv1, block1_conv2 and the add's output).
    assert plan.arena_bytes == plan.live_peak_bytes == 3 * 16384
    assert plan.arena_bytes < plan.unplanned_bytes / 2


def test_check_plan_names_overlapping_live_buffers() -> None:
    net = zoo.lenet5(0)
    plan = plan_memory(net)
    conv1 = plan.buffer("conv1")
    bad = [dataclasses.replace(b, offset=conv1.offset) if b.name == "pool1" else b
           for b in plan.buffers]
    with pytest.raises(PlanError, match=r"buffers 'conv1' \[0, 4704\) and 'pool1' \[0, 1176\) "
                                        r"overlap while both are live \(steps 2..2\)"):
        check_plan(dataclasses.replace(plan, buffers=tuple(bad)), net)
    odd = [dataclasses.replace(b, offset=b.offset + 1) if b.name == "fc1" else b
           for b in plan.buffers]
    with pytest.raises(PlanError, match="buffer 'fc1' at .* aligned to 8"):
        check_plan(dataclasses.replace(plan, buffers=tuple(odd)), net)
    with pytest.raises(PlanError, match="align expected a power of two"):
        plan_memory(net, align=6)


def test_weights_that_do_not_fit_l2_are_streamed_from_l3() -> None:
    net = zoo.lenet5(0)
    full = plan_memory(net)
    assert {p.memory for p in full.parameters} == {"L2"} and full.l3_bytes == 0 and full.fits
    sizes = {p.name: p.bytes for p in full.parameters}
    assert sizes["fc1"] == parameter_bytes(net.node("fc1")) == 400 * 120 + 4 * 120 + 5 * 120
    small = dataclasses.replace(deploy.default_target(), l2_bytes=full.arena_bytes + 60000)
    plan = plan_memory(net, small)
    memory = {p.name: p.memory for p in plan.parameters}
    assert memory == {"conv1": "L2", "conv2": "L2", "fc1": "L3", "fc2": "L3", "fc3": "L2"}
    assert plan.staging_bytes == max(p.bytes for p in plan.parameters if p.memory == "L3")
    assert plan.fits and plan.peak_l2_bytes <= small.l2_bytes
    assert plan.l2_parameter_bytes + plan.l3_bytes == sum(sizes.values())
    assert "L3 " in plan.summary() and "DOES NOT FIT" not in plan.summary()


def test_plan_document_lists_every_buffer() -> None:
    net = zoo.random_network(4)
    doc = plan_memory(net).to_json()
    assert [b["name"] for b in doc["buffers"]] == [n.name for n in net.nodes]
    assert doc["peak_l2_bytes"] == doc["arena_bytes"] + doc["l2_parameter_bytes"]
    assert np.all(np.array([b["offset"] for b in doc["buffers"]]) % doc["align"] == 0)


def test_wide_resnet20_streams_its_last_stage_from_l3() -> None:
    assert zoo.resnet20(0).node("conv1").out_channels == 16          # default width unchanged
    net = zoo.resnet20(0, width=32)
    plan = plan_memory(net)
    total = sum(p.bytes for p in plan.parameters)
    assert total > deploy.default_target().l2_bytes                  # weights exceed L2
    assert plan.fits and plan.l3_bytes + plan.l2_parameter_bytes == total
    streamed = [p.name for p in plan.parameters if p.memory == "L3"]
    assert "block9_conv2" in streamed and "conv1" not in streamed
