"""Host builds of the generated C against the NumPy reference, bit for bit, sanitizer-clean."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest

import deploy
import hwlib
from deploy import zoo
from deploy.emit_pulp import emit
from deploy.host import build_host, run_host, run_host_checked
from deploy.validate import compare_layers

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")


def _inputs(net: deploy.Network, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n,) + net.input.shape, dtype=np.uint8)


def _assert_exact(report: deploy.ValidationReport) -> None:
    bad = {l.name: (l.mismatches, l.first_mismatch) for l in report.layers if l.mismatches}
    assert report.ok and not bad, f"{report.network}: mismatching layers {bad}"


def test_lenet5_and_resnet8_match_reference_sanitized(tmp_path) -> None:
    nets = [zoo.lenet5(11), zoo.resnet8(12)]
    xs = [_inputs(n, 4, i) for i, n in enumerate(nets)]
    reports = deploy.validate_many(nets, xs, [tmp_path / n.name for n in nets], sanitize=True)
    for net, x, rep in zip(nets, xs, reports):
        _assert_exact(rep)
        assert [l.name for l in rep.layers] == [n.name for n in net.nodes]
        doc = json.loads((tmp_path / net.name / "validation.json").read_text())
        assert doc["mismatches"] == 0 and doc["ok"] is True and doc["sanitize"] is True
        assert doc["inputs"]["count"] == 4 and doc["inputs"]["shape"] == list(net.input.shape)
        ref = deploy.run(net, x)
        for entry in doc["layers"]:
            sums = ref[entry["name"]].astype(np.int64).reshape(4, -1).sum(axis=1) % 2**32
            assert entry["checksums"] == entry["firmware_checksums"] == sums.tolist()
        assert doc["checksum_mismatches"] == []
        marlin = {e["name"]: e["csr_word"] for e in doc["layers"] if e["csr_word"]}
        assert set(marlin) == set(net.multipliers())
        assert "-fsanitize=address,undefined" in doc["flags"] and "-Werror" in doc["flags"]


def test_200_random_networks_match_reference_sanitized(tmp_path) -> None:
    nets = [zoo.random_network(1000 + s) for s in range(200)]
    xs = [_inputs(n, 2, s) for s, n in enumerate(nets)]
    assert all(n.input.zero_point != 0 for n in nets)
    reports = deploy.validate_many(nets, xs, [tmp_path / f"net{i}" for i in range(200)],
                                   sanitize=True)
    bad = {r.network: r.mismatches for r in reports if not r.ok}
    assert not bad, f"mismatching networks: {bad}"
    ops = {l.op for r in reports for l in r.layers}
    assert ops == {"input", "conv", "linear", "maxpool", "avgpool", "global_avgpool", "add",
                   "flatten", "requant"}
    assert sum(l.csr_word is not None for r in reports for l in r.layers) > 400


def test_table_and_exact_multipliers_match_reference(tmp_path, mixed_picker) -> None:
    nets = [zoo.random_network(s, pick=mixed_picker) for s in range(8)]
    nets.append(deploy.with_multipliers(zoo.lenet5(2), ["deploytest:0", "exact", "marlin:0",
                                                        "deploytest:1", "marlin:255"]))
    specs = {s for n in nets for s in n.multipliers().values()}
    assert {"exact", "deploytest:0", "deploytest:1"} <= specs
    xs = [_inputs(n, 2, i) for i, n in enumerate(nets)]
    for rep in deploy.validate_many(nets, xs, [tmp_path / str(i) for i in range(len(nets))]):
        _assert_exact(rep)


def test_comparison_catches_a_missing_enable_and_a_wrong_level(tmp_path) -> None:
    net = deploy.with_multipliers(zoo.lenet5(5), ["marlin:255"] * 5)
    x = _inputs(net, 2, 0)
    ref = deploy.run(net, x)
    fw = emit(net, tmp_path / "fw")
    kernels = fw.directory / "nn_kernels.c"
    kernels.write_text(kernels.read_text().replace("hal_mac_enable();", ";", 1))
    got = run_host(build_host([fw], tmp_path / "b1"), [fw], [x], tmp_path / "b1")[0]
    assert not np.array_equal(got["conv1"], ref["conv1"])      # products came out exact
    fw = emit(net, tmp_path / "fw")
    layer = fw.directory / "layer_conv2.c"
    layer.write_text(layer.read_text().replace("0xFFFC0000u", "0xFFFC0008u"))  # level 254
    got = run_host(build_host([fw], tmp_path / "b2"), [fw], [x], tmp_path / "b2")[0]
    assert np.array_equal(got["conv1"], ref["conv1"])
    assert not np.array_equal(got["conv2"], ref["conv2"])


def test_firmware_checksums_name_a_corrupted_layer(tmp_path) -> None:
    net = zoo.lenet5(8)
    x = _inputs(net, 3, 2)
    ref = deploy.run(net, x)
    fw = emit(net, tmp_path / "fw", reference_input=x[0])
    layer = fw.directory / "layer_conv2.c"
    head, rest = layer.read_text().split("_bias[16] = {\n    ", 1)
    first, tail = rest.split(",", 1)
    layer.write_text(f"{head}_bias[16] = {{\n    {int(first) + 4096},{tail}")
    got = run_host_checked(build_host([fw], tmp_path / "b"), [fw], [x], tmp_path / "b")[0]
    layers = compare_layers(fw, ref, got)
    bad = [l.name for l in layers if not l.checksum_ok]
    assert bad[0] == "conv2" and "input" not in bad and "conv1" not in bad
    i = [l.name for l in layers].index("conv2")
    assert layers[i].firmware_checksums != layers[i].checksums and layers[i].mismatches > 0
    # the firmware's own checksums agree with its outputs: the check runs on target unchanged
    assert got.checksums[:, i].tolist() == [
        int(v) % 2**32 for v in got.outputs["conv2"].astype(np.int64).reshape(3, -1).sum(1)]


def test_emitted_makefile_builds_and_runs_on_the_host(tmp_path) -> None:
    net = zoo.random_network(7)
    fw = emit(net, tmp_path)
    subprocess.run(["make", "-s", "host"], cwd=tmp_path, check=True, capture_output=True)
    x = _inputs(net, 3, 1)
    got = run_host(tmp_path / f"{fw.prefix}_host", [fw], [x], tmp_path / "run")[0]
    ref = deploy.run(net, x)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_validate_refuses_bad_input_before_writing(tmp_path) -> None:
    net = zoo.lenet5(0)
    with pytest.raises(deploy.IRError, match=r"input expected shape \(N, 1, 32, 32\), got "
                                             r"\(2, 3, 32, 32\)"):
        deploy.validate(net, np.zeros((2, 3, 32, 32), np.uint8), tmp_path / "a")
    with pytest.raises(deploy.IRError, match="expected as many input batches"):
        deploy.validate_many([net, net], [np.zeros((1, 1, 32, 32), np.uint8)],
                             [tmp_path / "b", tmp_path / "c"])
    assert not any(tmp_path.iterdir())


def test_catalog_circuit_with_narrow_activation_domain(tmp_path) -> None:
    spec = "evo:mul8s_1L2N"                      # signed circuit: activations 0..127 only
    assert hwlib.get(spec).network_x_domain().hi == 127
    with pytest.raises(deploy.IRError, match=r"node 'conv2': activations in \[0, 255\] .* outside "
                                             r"the activation domain int8 \[-128, 127\] of "
                                             r"multiplier 'evo:mul8s_1L2N'"):
        deploy.with_multipliers(zoo.lenet5(6), ["marlin:1", spec, "exact", "exact", "exact"])
    base = zoo.lenet5(6)
    rq = base.node("conv1").requant
    narrow = dataclasses.replace(rq, hi=127)
    nodes = [dataclasses.replace(base.input, hi=127)] + [
        dataclasses.replace(n, requant=narrow) if n.name == "conv1" else n for n in base.nodes[1:]]
    net = deploy.with_multipliers(deploy.Network(tuple(nodes), name="lenet_narrow"),
                                  [spec, spec, "marlin:7", "exact", "marlin:250"])
    x = np.random.default_rng(3).integers(0, 128, (2, 1, 32, 32), dtype=np.uint8)
    assert deploy.run(net, x)["conv1"].max() <= 127
    with pytest.raises(deploy.IRError, match=r"input expected values in 0..127, got \[128, 128\]"):
        deploy.run(net, np.full((1, 1, 32, 32), 128, np.uint8))
    _assert_exact(deploy.validate(net, x, tmp_path))


def test_sanitized_build_reports_an_out_of_bounds_read(tmp_path) -> None:
    net = zoo.lenet5(1)
    fw = emit(net, tmp_path / "fw")
    kernels = fw.directory / "nn_kernels.c"
    line = "out[i] = in[(i % (p->h * p->w)) * p->c + i / (p->h * p->w)];"
    assert line in kernels.read_text()
    kernels.write_text(kernels.read_text().replace(line, line.replace(")];", ") + 1];")))
    exe = build_host([fw], tmp_path / "b", sanitize=True)
    # The arena is shared, so the sanitized build leaves only the running node's inputs and
    # output addressable: one byte past pool2 is poisoned arena memory.
    with pytest.raises(deploy.BuildError, match=r"(?s)use-after-poison.*in nn_flatten.*"
                                                r"inside of global variable 'net_arena'"):
        run_host(exe, [fw], [np.zeros((1, 1, 32, 32), np.uint8)], tmp_path / "r")


def test_node_names_differing_only_in_case_build(tmp_path) -> None:
    rq = deploy.Requant([1 << 14] * 2, [15] * 2)
    net = deploy.Network((
        deploy.Input(name="x", shape=(1, 4, 4), scale=1.0, zero_point=0, mean=None, std=None),
        deploy.Conv(name="Conv1", input="x", weight=np.ones((2, 1, 1, 1), np.int8), bias=[0, 0],
                    multiplier="exact", requant=rq),
        deploy.Conv(name="conv1", input="Conv1", weight=np.ones((2, 2, 1, 1), np.int8),
                    bias=[0, 0], multiplier="exact", requant=rq),
        deploy.Flatten(name="f", input="conv1"),
        deploy.Linear(name="fc", input="f", weight=np.ones((3, 32), np.int8), bias=[0] * 3,
                      multiplier="exact", requant=None)), name="cases")
    report = deploy.validate(net, _inputs(net, 2, 0), tmp_path)
    _assert_exact(report)
    fns = [layer.fn.lower() for layer in report.firmware.layers if layer.fn]
    assert len(set(fns)) == len(fns) == 4
