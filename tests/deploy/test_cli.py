"""``agn deploy`` on the command line: outputs, assignment handling, refusal before writing."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import deploy
import hwlib
from agn.cli import main
from deploy import zoo
from deploy.ir import Input, Linear, Requant
from deploy.rv32 import cross_compiler


def _run_dir(tmp_path, net=None):
    run = tmp_path / "run"
    deploy.save(net or zoo.lenet5(8), run)
    return run


def _assignment(path, pairs):
    path.write_text(json.dumps({"layers": [{"name": n, "multiplier": m, "sigma": 0.1}
                                           for n, m in pairs]}))
    return path


def test_deploy_writes_firmware_and_validation(tmp_path, capsys) -> None:
    run = _run_dir(tmp_path)
    levels = {"conv1": 3, "conv2": 200, "fc1": 128, "fc2": 0, "fc3": 255}
    a = _assignment(tmp_path / "assignment.json", [(n, f"marlin:{v}") for n, v in levels.items()])
    assert main(["deploy", str(run), "--assignment", str(a), "--n-inputs", "3"]) == 0
    out = capsys.readouterr().out
    assert "bit-exact" in out
    doc = json.loads((run / "validation.json").read_text())
    assert doc["ok"] and doc["mismatches"] == 0 and doc["inputs"]["count"] == 3
    plan = doc["memory_plan"]
    assert plan["fits"] and plan["l3_bytes"] == 0 and plan["arena_bytes"] < plan["unplanned_bytes"]
    assert f"memory plan: peak L2 {plan['peak_l2_bytes']} B of 524288 B" in out
    fc1 = next(t for t in doc["tiling_plan"]["layers"] if t["name"] == "fc1")
    assert fc1["l1_bytes"] <= 8192 and f"L1 {fc1['l1_bytes']} B x {fc1['tiles']} tiles" in out
    assert "tiling plan: 7 tiled layers" in out
    cost = doc["cost"]
    assert cost["totals"]["macs"] == sum(l["macs"] for l in cost["layers"]) > 0
    assert cost["model"]["macs_per_cycle"] == 4 and f"{cost['totals']['cycles']} cycles" in out
    words = {l["name"]: l["csr_word"] for l in doc["layers"] if l["csr_word"]}
    assert words == {n: f"0x{hwlib.marlin.csr_word(v):08X}" for n, v in levels.items()}
    for name, level in levels.items():
        src = (run / "firmware" / f"layer_{name}.c").read_text()
        assert src.count("hal_csr_write(") == 1
        assert f"hal_csr_write(0x{hwlib.marlin.csr_word(level):08X}u)" in src
    assert np.load(run / "validation_inputs.npy").shape == (3, 1, 32, 32)
    if cross_compiler() is not None:
        target = json.loads((run / "target_check.json").read_text())
        assert target["ok"] and len(target["layers"]) == 5
        loop = target["simd_inner_loop"]
        assert loop["dot_products"] == 16 and loop["enables_in_loops"] == 0
        assert f"{loop['instructions']} rv32 instructions for 16 pv.sdotusp.b = 64 MACs" in out
    assert "firmware checksums: 9 nodes per input agree with the reference" in out


@pytest.mark.parametrize("pairs, message", [
    ([("conv1", "marlin:300")] + [(n, "exact") for n in ("conv2", "fc1", "fc2", "fc3")],
     "multiplier for layer 'conv1'.*'marlin:300'"),
    ([("conv1", "exact")], r"missing \['conv2', 'fc1', 'fc2', 'fc3'\]"),
    ([(n, "exact") for n in ("conv1", "conv2", "fc1", "fc2", "fc3", "fc9")], r"unknown \['fc9'\]"),
])
def test_bad_assignment_is_refused_before_writing(tmp_path, capsys, pairs, message) -> None:
    run = _run_dir(tmp_path)
    a = _assignment(tmp_path / "assignment.json", pairs)
    assert main(["deploy", str(run), "--assignment", str(a)]) == 2
    err = capsys.readouterr().err
    assert "agn deploy: error:" in err
    assert re.search(message, err), err
    assert sorted(p.name for p in run.iterdir()) == ["network.json", "network.npz"]


def test_accumulator_overflow_is_refused_before_writing(tmp_path, capsys) -> None:
    fan_in = 64
    bias = 2**31 - 1 - fan_in * 32640                     # fits with the exact multiplier
    net = deploy.Network((Input(name="x", shape=(fan_in, 1, 1), scale=1.0, zero_point=0,
                                mean=None, std=None),
                          deploy.Flatten(name="f", input="x"),
                          Linear(name="fc", input="f", weight=np.ones((1, fan_in), np.int8),
                                 bias=[bias], multiplier="exact", requant=Requant([1], [1]))))
    run = _run_dir(tmp_path, net)
    a = _assignment(tmp_path / "a.json", [("fc", "deploytest:0")])   # max|m| > 32640
    assert main(["deploy", str(run), "--assignment", str(a)]) == 2
    assert "exceeds int32" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["network.json", "network.npz"]


def test_bad_inputs_are_refused_before_writing(tmp_path, capsys) -> None:
    run = _run_dir(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.uint8))
    assert main(["deploy", str(run / "network.json"), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert r"expected shape (N, 1, 32, 32)" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["network.json", "network.npz"]


def test_cli_module_does_not_import_torch() -> None:
    code = "import sys, agn.cli.deploy; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_default_inputs_follow_the_networks_declared_input_range(tmp_path, capsys) -> None:
    """A network whose input is limited to 0..127 (signed catalog circuits) validates on random
    inputs drawn from that range, not from 0..255."""
    import dataclasses

    net = zoo.lenet5(8)
    narrow = deploy.Network((dataclasses.replace(net.nodes[0], hi=127), *net.nodes[1:]),
                            name=net.name)
    run = _run_dir(tmp_path, narrow)
    assert main(["deploy", str(run), "--n-inputs", "4", "--no-target-check"]) == 0
    x = np.load(run / "validation_inputs.npy")
    assert x.shape[0] == 4 and int(x.max()) <= 127 and int(x.max()) > 64
    assert "bit-exact" in capsys.readouterr().out
