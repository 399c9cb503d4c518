"""Tiled firmware on the host against the NumPy reference: tiny L1 slices force 1-row tiles,
odd channel counts, stride-2 halos, depthwise channel tiles, input chunks of linear layers and
untiled fallbacks, all through the double-buffered DMA pipeline (whose host copies happen at
the wait, so a missing wait shows up as wrong outputs)."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.host import build_host, run_host
from deploy.zoo import _Builder, random_marlin

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")


def _target(l1: int, cores: int = 8) -> deploy.Target:
    return dataclasses.replace(deploy.default_target(), l1_bytes=l1, num_cores=cores)


def _inputs(net: deploy.Network, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n,) + net.input.shape, dtype=np.uint8)


def _assert_exact(report: deploy.ValidationReport) -> None:
    bad = {l.name: (l.mismatches, l.first_mismatch) for l in report.layers if l.mismatches}
    assert report.ok and not bad, f"{report.network}: mismatching layers {bad}"


def edge_network(seed: int = 0) -> deploy.Network:
    """Odd shapes and channels, asymmetric padding, stride 2, depthwise, pointwise, pools, add."""
    b = _Builder(np.random.default_rng(seed), random_marlin, (5, 27, 21), zero_point=17,
                 random_zp=True)
    x = b.conv("conv_s2", "input", 7, 3, stride=2, padding=(1, 2, 0, 1))
    y = b.conv("dw_s2", x, 7, 3, stride=2, padding=1, groups=7)
    y = b.conv("pw", y, 7, 1)
    z = b.conv("grouped", b.maxpool("max_s2", x, 3, 2, 1), 7, 1, groups=7, fused=False)
    y = b.add("add", y, z)
    y = b.avgpool("avg", b.conv("conv_int32_pad", y, 5, 2, padding=(0, 1, 1, 0)), 2, 1)
    y = b.flatten("flatten", b.global_avgpool("gap", y))
    b.linear("fc", b.linear("fc_hidden", y, 9), 3, logits=True)
    return b.network("edges")


def _core_steps(t: deploy.tiling.LayerTiling) -> list[int]:
    """Pipeline steps of each core that has tiles."""
    return [len(range(c, t.n_tiles, t.cores)) * t.n_chunks for c in range(min(t.cores, t.n_tiles))]


def test_edge_network_is_bit_exact_for_every_l1_size(tmp_path) -> None:
    net = edge_network()
    seen: set[str] = set()
    for l1, cores in ((65536, 8), (8 * 480, 8), (8 * 256, 8), (8 * 128, 8), (65536, 1)):
        report = deploy.validate(net, _inputs(net, 3, l1), tmp_path / f"{l1}_{cores}",
                                 sanitize=True, target=_target(l1, cores))
        _assert_exact(report)
        tiling = report.firmware.tiling
        assert all(t.l1_bytes <= tiling.core_l1_bytes for t in tiling.layers)
        for t in tiling.layers:
            if not t.tiled:
                seen.add("L2 fallback" if "smallest tile" in t.note else "")
            elif t.n_tiles == 1:
                seen.add("single tile")              # one core, one step: nothing overlaps
            else:
                seen.add(f"{t.name} tiled")
                steps = _core_steps(t)               # a core's last step in set 0 or set 1
                seen |= {"odd steps" for n in steps if n % 2 and n > 1}
                seen |= {"even steps" for n in steps if n % 2 == 0}
                seen |= {"one step" for n in steps if n == 1}
                seen |= {"single buffered"} if t.sets == 1 else set()
                if t.tile_rows == 1 and t.rows > 1:
                    seen.add(f"{t.name} 1-row")
                if t.tile_channels < t.channels:
                    seen.add(f"{t.name} channel tiles")
    assert {"conv_s2 1-row", "dw_s2 1-row", "dw_s2 channel tiles", "max_s2 1-row",
            "grouped channel tiles", "conv_int32_pad tiled", "avg tiled", "add tiled",
            "fc_hidden tiled", "L2 fallback", "single tile", "one step", "odd steps",
            "even steps", "single buffered"} <= seen, seen


def wide_fc_network(seed: int = 0) -> deploy.Network:
    """A linear layer whose fan-in (1,296) exceeds a small L1 slice, then int32 logits."""
    b = _Builder(np.random.default_rng(seed), random_marlin, (16, 9, 9), zero_point=5)
    y = b.linear("fc_wide", b.flatten("flatten", "input"), 37)
    b.linear("fc_out", y, 7, logits=True)
    return b.network("wide_fc")


def test_linear_input_is_chunked_bit_exactly(tmp_path) -> None:
    net = wide_fc_network()
    for l1 in (65536, 8 * 1024, 8 * 160):
        report = deploy.validate(net, _inputs(net, 3, l1), tmp_path / str(l1), sanitize=True,
                                 target=_target(l1))
        _assert_exact(report)
        t = report.firmware.tiling.layer("fc_wide")
        assert t.tiled and t.l1_bytes <= report.firmware.tiling.core_l1_bytes
        if l1 < 65536:           # the whole fan-in does not fit: partial sums over chunks
            assert t.chunk < 1296 and t.n_chunks == -(-1296 // t.chunk) > 1
            assert t.scratch_bytes == 4 * t.tile_channels
    assert t.n_chunks > 10 and t.chunk % 4 == 0


@pytest.mark.parametrize("cut", [
    ("            hal_dma_wait(&load[s][i]);\n", "            (void)i;\n"),
    ("        if (stores[s])\n            hal_dma_wait(&store[s]);\n        stores[s] =",
     "        stores[s] ="),
], ids=["load wait", "store wait"])
def test_a_removed_dma_wait_is_caught_on_the_host(tmp_path, cut) -> None:
    net = edge_network()
    x = _inputs(net, 2, 0)
    report = deploy.validate(net, x, tmp_path, target=_target(8 * 480))
    _assert_exact(report)
    fw = report.firmware
    kernels = fw.directory / "nn_kernels.c"
    text = kernels.read_text()
    assert text.count(cut[0]) == 1
    kernels.write_text(text.replace(*cut))
    got = run_host(build_host([fw], tmp_path / "b"), [fw], [x], tmp_path / "b")[0]
    ref = deploy.run(net, x)
    tiled = [t.name for t in fw.tiling.layers if t.tiled and max(_core_steps(t)) > 2]
    assert tiled and all(not np.array_equal(got[n], ref[n]) for n in tiled)


def test_random_networks_with_tiny_l1_match_reference_sanitized(tmp_path) -> None:
    nets = [zoo.random_network(2000 + s) for s in range(60)]
    xs = [_inputs(n, 2, s) for s, n in enumerate(nets)]
    reports = deploy.validate_many(nets, xs, [tmp_path / f"net{i}" for i in range(60)],
                                   sanitize=True, target=_target(8 * 48))
    bad = {r.network: r.mismatches for r in reports if not r.ok}
    assert not bad, f"mismatching networks: {bad}"
    tilings = [t for r in reports for t in r.firmware.tiling.layers]
    assert sum(t.tiled and t.n_tiles > 1 for t in tilings) > 60
    assert any(not t.tiled and "smallest tile" in t.note for t in tilings)   # L2 fallback


def test_resnet8_with_small_l1_matches_reference(tmp_path) -> None:
    net = zoo.resnet8(3)
    report = deploy.validate(net, _inputs(net, 2, 0), tmp_path, target=_target(26624))
    _assert_exact(report)
    tiling = report.firmware.tiling
    assert all(t.tiled for t in tiling.layers if t.op != "flatten")
    assert sum(t.n_tiles for t in tiling.layers if t.tiled) > 1000


@pytest.mark.parametrize("make", [zoo.resnet20, zoo.mobilenetv2_small])
def test_cifar_resnet20_and_mobilenetv2_small_validate_sanitized(tmp_path, make) -> None:
    net = make(0)
    report = deploy.validate(net, _inputs(net, 2, 1), tmp_path, sanitize=True)
    _assert_exact(report)
    fw = report.firmware
    assert fw.plan.fits and fw.plan.peak_l2_bytes <= 512 * 1024 and fw.plan.l3_bytes == 0
    assert fw.plan.arena_bytes < fw.plan.unplanned_bytes / 3
    assert all(t.tiled and t.l1_bytes <= fw.tiling.core_l1_bytes
               for t in fw.tiling.layers if t.op != "flatten")
    if net.name == "mobilenetv2_small":
        assert any(n.op == "conv" and n.groups > 1 for n in net.nodes)


def test_weights_beyond_l2_are_streamed_from_l3_bit_exactly(tmp_path) -> None:
    net = zoo.lenet5(0)
    full = deploy.memplan.plan_memory(net)
    small = dataclasses.replace(deploy.default_target(), l2_bytes=full.arena_bytes + 60000)
    x = _inputs(net, 3, 0)
    report = deploy.validate(net, x, tmp_path, sanitize=True, target=small)
    _assert_exact(report)
    fw = report.firmware
    assert {p.name for p in fw.plan.parameters if p.memory == "L3"} == {"fc1", "fc2"}
    assert fw.plan.fits and fw.activation_bytes + fw.parameter_bytes <= small.l2_bytes
    network_c = (fw.directory / "network.c").read_text()
    assert f"uint8_t net_staging[{fw.plan.staging_bytes}]" in network_c
    assert "net_fc1_load();\n" in network_c and "net_conv1_load" not in network_c
    assert "HAL_L3 static const int8_t net_fc2_weight[" in (
        fw.directory / "layer_fc2.c").read_text()
    # Without fc2's load the kernel reads fc1's parameters from the staging buffer: caught.
    (fw.directory / "network.c").write_text(network_c.replace("net_fc2_load();\n", ""))
    got = run_host(build_host([fw], tmp_path / "b"), [fw], [x], tmp_path / "b")[0]
    ref = deploy.run(net, x)
    assert np.array_equal(got["fc1"], ref["fc1"]) and not np.array_equal(got["fc2"], ref["fc2"])


def test_a_layer_larger_than_l2_streams_its_weight_tiles_from_l3(tmp_path) -> None:
    net = zoo.lenet5(0)
    arena = deploy.memplan.plan_memory(net).arena_bytes
    small = dataclasses.replace(deploy.default_target(), l2_bytes=arena + 40000)
    assert deploy.memplan.parameter_bytes(net.node("fc1")) > small.l2_bytes   # fc1 alone
    x = _inputs(net, 3, 0)
    report = deploy.validate(net, x, tmp_path, sanitize=True, target=small)
    _assert_exact(report)
    fw = report.firmware
    memory = {p.name: p.memory for p in fw.plan.parameters}
    assert memory["fc1"] == "L3 tiles" and "L3 tiles" not in {memory[n] for n in memory
                                                               if n != "fc1"}
    fc1 = fw.tiling.layer("fc1")
    assert fw.plan.tile_staging_bytes == 8 * fc1.weight_tile_bytes <= fw.plan.staging_bytes
    assert fw.plan.fits and fw.activation_bytes + fw.parameter_bytes <= small.l2_bytes
    assert "weights streamed per tile: fc1" in fw.plan.summary()
    layer_c = (fw.directory / "layer_fc1.c").read_text()
    assert "HAL_L3 static const int8_t net_fc1_weight[" in layer_c
    assert "HAL_L3 static const int32_t net_fc1_bias[" not in layer_c and "net_staging }" in layer_c
    assert "net_fc1_load" not in (fw.directory / "network.c").read_text()
    # Without the L3 read each core's slot keeps stale bytes: fc1 goes wrong, conv1 does not.
    kernels = fw.directory / "nn_kernels.c"
    read = "        hal_l3_read_2d(slot, src, lines, line, stride);\n"
    assert kernels.read_text().count(read) == 1
    kernels.write_text(kernels.read_text().replace(read, "        (void)src;\n"))
    got = run_host(build_host([fw], tmp_path / "b"), [fw], [x], tmp_path / "b")[0]
    ref = deploy.run(net, x)
    assert np.array_equal(got["conv1"], ref["conv1"]) and not np.array_equal(got["fc1"], ref["fc1"])
