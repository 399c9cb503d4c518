"""Tiled firmware on the host against the NumPy reference: tiny L1 slices force 1-row tiles,
odd channel counts, stride-2 halos, depthwise channel tiles and untiled fallbacks."""
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


def _target(l1: int) -> deploy.Target:
    return dataclasses.replace(deploy.default_target(), l1_bytes=l1)


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


def test_edge_network_is_bit_exact_for_every_l1_size(tmp_path) -> None:
    net = edge_network()
    seen: set[str] = set()
    for l1 in (65536, 8 * 240, 8 * 128, 8 * 64):
        report = deploy.validate(net, _inputs(net, 3, l1), tmp_path / str(l1), sanitize=True,
                                 target=_target(l1))
        _assert_exact(report)
        tiling = report.firmware.tiling
        assert all(t.l1_bytes <= tiling.core_l1_bytes for t in tiling.layers)
        for t in tiling.layers:
            if not t.tiled:
                seen.add("L2 fallback" if "smallest tile" in t.note else "")
            elif t.n_tiles > 1:
                seen.add(f"{t.name} tiled")
                if t.tile_rows == 1 and t.rows > 1:
                    seen.add(f"{t.name} 1-row")
                if t.tile_channels < t.channels:
                    seen.add(f"{t.name} channel tiles")
    assert {"conv_s2 1-row", "dw_s2 1-row", "dw_s2 channel tiles", "max_s2 1-row",
            "grouped channel tiles", "conv_int32_pad tiled", "avg tiled", "add tiled",
            "fc_hidden tiled", "L2 fallback"} <= seen, seen


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
