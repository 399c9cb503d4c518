"""The cost model: MACs, cycles from the SIMD MAC rate, DMA bytes, CSR writes, energy."""
from __future__ import annotations

import dataclasses

import pytest

import deploy
import hwlib
from deploy import zoo
from deploy.cost import CostParams, estimate, macs, totals
from deploy.memplan import plan_memory
from deploy.tiling import plan_tiling


def test_lenet5_costs() -> None:
    net = deploy.with_multipliers(zoo.lenet5(0), ["marlin:255", "exact", "marlin:0",
                                                  "marlin:3", "marlin:255"])
    tiling = plan_tiling(net)
    costs = {c.name: c for c in estimate(net, tiling)}
    assert costs["conv1"].macs == macs(net.node("conv1"), net) == 25 * 6 * 28 * 28
    assert costs["conv2"].macs == 150 * 16 * 10 * 10 and costs["pool1"].macs == 0
    # conv1: 8 tiles, one per core, 4 MACs per cycle; 3 transfers of 20 cycles per tile and
    # 8 B per cycle
    t = tiling.layer("conv1")
    assert t.n_tiles == 8
    assert costs["conv1"].compute_cycles == 25 * 6 * 28 * 28 // 4 // 8
    assert costs["conv1"].cycles == (25 * 6 * 28 * 28 // 32 + -(-t.dma_bytes // 8) + 24 * 20)
    # per core: the level, then the SIMD route set and cleared once around the kernel
    assert costs["conv1"].csr_writes == 3 * 8 and costs["conv2"].csr_writes == 0
    mw = hwlib.get("marlin:255").power.mw
    assert costs["conv1"].mult_energy_uj == pytest.approx(117600 * mw * 1e-3 / 500e6 * 1e6)
    assert costs["conv2"].mult_energy_uj is None                # exact: no absolute figure
    total = totals(tuple(costs.values()))
    assert total["macs"] == sum(n.fan_in * net.infos[n.name].size for n in net.layers)
    assert total["mult_energy_uj"] is None


def test_faster_simd_rate_lowers_compute_cycles() -> None:
    net = zoo.resnet8(0)
    tiling = plan_tiling(net)
    slow = sum(c.compute_cycles for c in estimate(net, tiling, CostParams(macs_per_cycle=1)))
    fast = sum(c.compute_cycles for c in estimate(net, tiling))
    assert 3.5 < slow / fast <= 4.0
    assert totals(estimate(net, tiling))["mult_energy_uj"] > 0       # every layer is MARLIN


def test_double_buffering_overlaps_dma_with_compute() -> None:
    net = zoo.resnet8(0)
    tiling = plan_tiling(net)
    for c in estimate(net, tiling):
        t = tiling.layer(c.name)
        rounds = -(-t.n_steps // t.cores) if t.tiled and t.sets == 2 else 1
        hidden = min(c.compute_cycles, c.dma_cycles) * (rounds - 1) // rounds
        assert c.cycles == c.compute_cycles + c.dma_cycles - hidden and c.l3_cycles == 0
        assert max(c.compute_cycles, c.dma_cycles) <= c.cycles
        assert c.dma_transfers == (t.n_steps * (1 if t.op in ("maxpool", "avgpool",
                                                              "global_avgpool") else 2)
                                   + t.n_tiles if t.tiled else 0)
    # block1_conv1 runs 4 rounds of tiles: 3/4 of the smaller side is hidden
    b1 = next(c for c in estimate(net, tiling) if c.name == "block1_conv1")
    assert b1.cycles < b1.compute_cycles + b1.dma_cycles


def test_l3_traffic_of_layers_and_weight_tiles() -> None:
    net = zoo.lenet5(0)
    arena = plan_memory(net).arena_bytes
    p = CostParams()
    for extra, memory in ((60000, "L3"), (40000, "L3 tiles")):
        target = dataclasses.replace(deploy.default_target(), l2_bytes=arena + extra)
        tiling = plan_tiling(net, target)
        plan = plan_memory(net, target, tiling=tiling)
        assert plan.placement("fc1") == memory
        fc1 = next(c for c in estimate(net, tiling, plan=plan) if c.name == "fc1")
        t = tiling.layer("fc1")
        if memory == "L3":                      # the whole parameter block once, 4 reads
            assert fc1.l3_bytes == 49080
            assert fc1.l3_cycles == int(49080 * p.l3_cycles_per_byte) + 4 * p.l3_setup_cycles
        else:                                   # the weights, one read per pipeline step
            assert fc1.l3_bytes == 400 * 120
            assert fc1.l3_cycles == int(48000 * p.l3_cycles_per_byte) + t.n_steps * 100
        no_l3 = next(c for c in estimate(net, tiling) if c.name == "fc1")
        assert fc1.cycles == no_l3.cycles + fc1.l3_cycles
        assert totals(estimate(net, tiling, plan=plan))["l3_bytes"] == plan.l3_bytes
