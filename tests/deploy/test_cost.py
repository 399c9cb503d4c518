"""The cost model: MACs, cycles from the SIMD MAC rate, DMA bytes, CSR writes, energy."""
from __future__ import annotations

import pytest

import deploy
import hwlib
from deploy import zoo
from deploy.cost import CostParams, estimate, macs, totals
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
