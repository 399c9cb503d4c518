"""Runtime operating points on the quick run (issue 13): three distinct assignments, at most K
circuits on a fixed catalog, per-point affines trained and checkpointed, every point bit-exact
in the switched firmware, and the report's section."""
import contextlib
import json

import pytest
import torch

from agn.cli import main
from agn.operating_points import read_points
from agn.run import read_checkpoint


def _check_points(run, n_points=3):
    pts = read_points(run)
    assert len(pts.points) == n_points
    specs = [p.assignment.specs() for p in pts.points]
    assert len({tuple(s.items()) for s in specs}) == n_points      # distinct assignments
    val = json.loads((run / "operating_points" / "validation.json").read_text())
    assert val["ok"] and val["mismatches"] == 0
    assert sorted({r["point"] for r in val["runs"]}) == list(range(n_points))
    assert all(r["mismatches"] == 0 for r in val["runs"])           # 0 mismatches per point
    assert all(r["changed_reference"] == r["changed_firmware"] for r in val["runs"])
    assert val["memory"]["bytes_per_extra_point"] > 0
    state = read_checkpoint(run / "operating_points" / "last.ckpt")["state_dict"]
    betas = {k: v for k, v in state.items() if k.endswith("point_affine.beta")}
    gammas = {k: v for k, v in state.items() if k.endswith("point_affine.log_gamma")}
    assert len(betas) == len(pts.points[0].assignment.layers) == len(gammas)
    for b in betas.values():  # retrained: every point's offsets moved, and differently
        assert b.shape[0] == n_points and torch.all(b.abs().sum(dim=1) > 0)
        assert not torch.equal(b[0], b[1]) and not torch.equal(b[1], b[2])
    assert all(p.test_accuracy is not None and p.energy > 0 for p in pts.points)
    assert [p.extra_parameters > 0 for p in pts.points] == [False] + [True] * (n_points - 1)
    return pts


def test_pipeline_with_three_operating_points_on_marlin(run_copy, capsys):
    argv = ["pipeline", "--run-dir", str(run_copy), "--quick", "--operating-points", "3",
            "--points-batches", "2"]
    assert main(argv) == 0
    pts = _check_points(run_copy)
    assert pts.catalog == "marlin:*" and pts.details["reconfigurable"]
    report = (run_copy / "report.md").read_text()
    assert "## Runtime operating points" in report and "operating_points.png" in report
    assert (run_copy / "operating_points.png").stat().st_size > 0
    status = json.loads((run_copy / "pipeline.json").read_text())
    assert "operating_points" in status["finished"]
    capsys.readouterr()
    assert main(argv) == 0                                            # a rerun skips the stage
    assert "[operating_points] already finished, skipped" in capsys.readouterr().out


def test_operating_points_stage_on_a_fixed_catalog_respects_k_circuits(run_copy, capsys):
    assert main(["operating-points", "--run-dir", str(run_copy), "--points", "3",
                 "--max-circuits", "3", "--points-catalog", "trunc:*,drum:*",
                 "--points-batches", "2"]) == 0
    pts = _check_points(run_copy)
    assert pts.max_circuits == 3 and len(pts.circuits) <= 3
    assert "circuits:" in capsys.readouterr().out


def test_joint_retraining_resumes_exactly_and_a_finished_one_only_loads(run_copy):
    from agn.operating_points.training import retrain_points
    from agn.run import datamodule, pipeline_config

    cfg = pipeline_config(run_copy).train_config()
    dm = datamodule(cfg, setup=True)
    names = [s["name"] for s in json.loads((run_copy / "sigmas.json").read_text())["layers"]]
    specs = [{n: f"marlin:{lv}" for n in names} for lv in (0, 100)]

    def state(d):
        return read_checkpoint(d / "last.ckpt")

    straight, cut = run_copy / "straight", run_copy / "cut"
    retrain_points(straight, run_copy, cfg, dm, specs, epochs=2, batches=1)
    retrain_points(cut, run_copy, cfg, dm, specs, epochs=1, batches=1)   # killed after epoch 1
    assert state(cut)["epoch"] == 0
    retrain_points(cut, run_copy, cfg, dm, specs, epochs=2, batches=1)   # resumed
    a, b = state(straight)["state_dict"], state(cut)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
    mtime = (cut / "last.ckpt").stat().st_mtime_ns
    res = retrain_points(cut, run_copy, cfg, dm, specs, epochs=2, batches=1)
    assert (cut / "last.ckpt").stat().st_mtime_ns == mtime and res.epochs == 2


def test_joint_method_keeps_k_circuits_and_records_the_equal_budget_comparison(run_copy, capsys):
    """Also with per-point error-mean compensation: corrections in the checkpoint, bit-exact."""
    assert main(["operating-points", "--run-dir", str(run_copy), "--points", "3",
                 "--max-circuits", "3", "--points-catalog", "trunc:*,drum:*",
                 "--points-batches", "2", "--method", "joint", "--joint-pop", "6",
                 "--joint-gen", "2", "--joint-val", "64", "--points-compensate"]) == 0
    pts = _check_points(run_copy)                    # valid points, 0 mismatches per point
    assert len(pts.circuits) <= 3 and pts.details["method"] == "joint"
    assert pts.details["compensate"]
    state = read_checkpoint(run_copy / "operating_points" / "last.ckpt")["state_dict"]
    corr = [v for k, v in state.items() if k.endswith("point_affine.correction")]
    assert len(corr) == len(pts.points[0].assignment.layers)
    assert all(c.shape[0] == 3 and c.dtype == torch.int64 for c in corr)
    exact = {p: {n for n, s in pt.assignment.specs().items() if s == "exact"}
             for p, pt in enumerate(pts.points)}
    for (name, c), layer in zip(((k, v) for k, v in state.items()
                                 if k.endswith("point_affine.correction")),
                                pts.points[0].assignment.layers):
        for p in range(3):                           # exact layers get no correction
            if layer.name in exact[p]:
                assert not c[p].any(), name
    assert any(c.any() for c in corr)
    j = pts.details["joint"]
    assert j["budget_networks"] > 0 and j["clustering_networks"] >= 1 and j["val_samples"] == 64
    for seed, chosen in zip(j["clustering_set"], j["chosen_set"]):   # never worse than the seed
        assert chosen["energy"] <= seed["energy"] + 1e-12
        assert chosen["error"] <= seed["error"] + 1e-12
    assert [p.energy for p in pts.points] == [pytest.approx(c["energy"])
                                              for c in j["chosen_set"]]
    assert "joint NSGA-II vs jittered clusterings" in capsys.readouterr().out


def test_bad_points_settings_are_refused_before_any_training(tmp_path, capsys):
    run = tmp_path / "run"
    for bad in (["--points-method", "best"], ["--points-method", "joint", "--joint-pop", "1"],
                ["--points-catalog", "nosuch:*"]):
        with pytest.raises(SystemExit) if bad[1] == "best" else contextlib.nullcontext():
            assert main(["pipeline", "--run-dir", str(run), "--quick", "--operating-points",
                         "3", *bad]) == 2
        assert not run.exists()
    err = capsys.readouterr().err
    assert "joint_pop expected >= 2, got 1" in err and "'nosuch:*'" in err
