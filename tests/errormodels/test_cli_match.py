"""``agn match`` end to end on a synthetic run directory."""
import json
import subprocess
import sys

import numpy as np
import pytest

from agn.cli import main
from errormodels import (
    ErrorCatalog,
    OperandStats,
    load_stats,
    match,
    read_assignment,
    read_sigmas,
    save_stats,
)
from errormodels.blocks import BLOCKS_FILE, BlockOperands, save_block_operands


@pytest.fixture()
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    stats, rows, blocks = [], [], []
    for i, fan in enumerate((25, 150, 400)):
        weights = rng.integers(-90, 91, size=(4, fan))
        fields = rng.integers(0, rng.integers(20, 256, size=(16, 1)), size=(16, fan))
        st = OperandStats.from_operands(f"net.{i}", weights, fields, multiplications=fan * 50,
                                        out_std=float(300 * (i + 1)), out_mean=1.0, seed=3)
        stats.append(st)
        blocks.append(BlockOperands.from_operands(st.name, weights.reshape(4, (5, 10, 20)[i], -1),
                                                  fields))
        rows.append({"name": st.name, "sigma": 0.02 * (i + 1), "multiplications": fan * 50,
                     "fan_in": fan})
    save_stats(tmp_path / "operand_stats.npz", stats)
    save_block_operands(tmp_path / BLOCKS_FILE, blocks)
    (tmp_path / "sigmas.json").write_text(json.dumps({"lambda": 0.2, "layers": rows}))
    return tmp_path


def test_match_writes_the_library_result(run_dir, capsys):
    cat = "marlin:0,marlin:1,marlin:15,marlin:63,marlin:255"
    assert main(["match", "--run-dir", str(run_dir), "--catalog", cat, "--rule", "nearest",
                 "--metric", "rms"]) == 0
    out = capsys.readouterr().out
    got = read_assignment(run_dir)
    want = match(read_sigmas(run_dir), load_stats(run_dir), ErrorCatalog.build(cat),
                 rule="nearest", metric="rms", compensate=True)  # the pipeline's default
    assert got == want
    for layer in got.layers:
        assert layer.name in out and layer.multiplier in out
    assert f"{got.energy:.4f}" in out and "MARLIN UMC 65 nm" in out


def test_match_compensates_as_the_pipeline_does_unless_told_not_to(run_dir):
    from agn.cli.match import COMPENSATE
    from agn.config import MatchConfig

    assert COMPENSATE == MatchConfig().compensate
    cat = "marlin:0,marlin:15,marlin:255"
    assert main(["match", "--run-dir", str(run_dir), "--catalog", cat, "--no-compensate"]) == 0
    want = match(read_sigmas(run_dir), load_stats(run_dir), ErrorCatalog.build(cat))
    assert read_assignment(run_dir) == want


def test_match_reports_bad_input(run_dir, capsys):
    rows = json.loads((run_dir / "sigmas.json").read_text())["layers"]
    rows[1]["sigma"] = float("nan")
    (run_dir / "sigmas.json").write_text(json.dumps(rows))
    assert main(["match", "--run-dir", str(run_dir)]) == 2
    assert "layer 'net.1' has sigma=nan" in capsys.readouterr().err
    assert not (run_dir / "assignment.json").exists()
    rows[1]["sigma"] = 0.1
    (run_dir / "sigmas.json").write_text(json.dumps(rows))
    assert main(["match", "--run-dir", str(run_dir), "--catalog", "nosuch:1"]) == 2
    assert "unknown family 'nosuch'" in capsys.readouterr().err


def test_match_command_does_not_import_torch(run_dir):
    code = ("import sys; from agn.cli import main; "
            f"rc = main(['match', '--run-dir', {str(run_dir)!r}, "
            "'--catalog', 'marlin:0,marlin:9']);"
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (run_dir / "assignment.json").exists()


def test_match_at_filter_granularity_writes_groups_and_counts(run_dir, capsys):
    cat = "marlin:0,marlin:15,marlin:63,marlin:255"
    assert main(["match", "--run-dir", str(run_dir), "--catalog", cat, "--granularity",
                 "filter", "--group", "2"]) == 0
    out = capsys.readouterr().out
    got = read_assignment(run_dir)
    from errormodels import load_stats
    from errormodels.channels import match_filters
    assert got == match_filters(read_sigmas(run_dir), load_stats(run_dir),
                                ErrorCatalog.build(cat), group=2)
    assert all(len(x.groups) == 2 for x in got.layers)
    assert json.loads((run_dir / "assignment.json").read_text())["version"] == 2
    assert out.count("filters per multiplier:") == 3 and "per-channel" in out


def test_match_at_kernel_granularity_writes_blocks(run_dir, capsys):
    cat = "marlin:0,marlin:15,marlin:63,marlin:255"
    args = ["match", "--run-dir", str(run_dir), "--catalog", cat, "--granularity", "kernel",
            "--group", "2", "--in-group", "5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    got = read_assignment(run_dir)
    from errormodels import load_stats
    from errormodels.blocks import load_block_operands, match_kernels
    assert got == match_kernels(read_sigmas(run_dir), load_stats(run_dir),
                                load_block_operands(run_dir), ErrorCatalog.build(cat), group=2,
                                in_group=5)
    assert [len(x.groups) for x in got.layers] == [2 * 1, 2 * 2, 2 * 4]
    assert all(b.inp is not None for x in got.layers for b in x.groups)
    assert out.count("filters per multiplier:") == 3 and "per-block" in out
    assert main(args[:-1] + ["3"]) == 2
    assert "group size 3 does not divide the 5 input channels" in capsys.readouterr().err
    assert main(args + ["--rule", "nearest"]) == 2
    assert "kernel granularity matches with the cheapest rule" in capsys.readouterr().err
