import csv
import json

import numpy as np
import pytest

import deploy
import errormodels as em
import hwlib
from agn.cli import main
from agn.pipeline import PipelineConfig, RunStatus, Stage, run_stages
from agn.pipeline.stages import STAGES, choose_point

ARTIFACTS = ["sigmas.json", "operand_stats.npz", "assignment.json", "pareto.csv", "pareto.json",
             "pareto.png", "network.json", "network.npz", "firmware", "validation.json",
             "report.md", "sigmas.png", "tolerances.png", "chosen_assignment.json",
             "hypervolume.csv", "pipeline.json"]


def test_quickstart_notebook_runs_every_stage(quick_run):
    run_dir, nb = quick_run
    for name in ARTIFACTS:
        assert (run_dir / name).exists(), f"{name} missing"
    finished = json.loads((run_dir / "pipeline.json").read_text())["finished"]
    assert list(finished) == [s.name for s in STAGES]
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "firmware mismatches 0" in outputs


def test_artifacts_are_consistent(quick_run):
    run_dir, _ = quick_run
    validation = json.loads((run_dir / "validation.json").read_text())
    assert validation["mismatches"] == 0
    chosen = json.loads((run_dir / "chosen_assignment.json").read_text())
    chosen_asg = {r["name"]: r["multiplier"] for r in chosen["layers"]}
    rows = list(csv.DictReader((run_dir / "pareto.csv").open()))
    match = [r for r in rows if [r[n] for n in chosen_asg] == list(chosen_asg.values())]
    assert len(match) == 1, "the chosen point is not on the Pareto front"
    sig = {s.name: s.multiplications for s in em.read_sigmas(run_dir / "sigmas.json")}
    energy = hwlib.Catalog.build("marlin:*").energy(list(chosen_asg.values()),
                                                    [sig[n] for n in chosen_asg])
    assert energy == pytest.approx(chosen["energy"], rel=1e-9)
    same_reader = em.read_assignment(run_dir / "chosen_assignment.json")  # as assignment.json
    assert same_reader.specs() == chosen_asg and same_reader.energy == chosen["energy"]
    assert [x.multiplications for x in same_reader.layers] == [sig[n] for n in chosen_asg]
    assert same_reader.details["genome"] in [[int(g) for g in r["genome"].split()] for r in rows]
    assert float(match[0]["energy"]) == pytest.approx(energy, abs=1e-6)
    net = deploy.load(run_dir)
    assert net.multipliers() == chosen_asg
    assert [layer.name for layer in net.layers] == list(sig)
    for name, spec in chosen_asg.items():
        source = (run_dir / "firmware" / f"layer_{name.replace('.', '_')}.c").read_text()
        writes = [ln for ln in source.splitlines() if "hal_csr_write(" in ln]
        if spec.startswith("marlin:"):
            word = hwlib.marlin.csr_word(int(spec.split(":")[1]))
            assert len(writes) == 1 and f"0x{word:08X}u" in writes[0], (name, writes)
        else:
            assert writes == []
    report = (run_dir / "report.md").read_text()
    assert f"**{chosen['energy']:.4f}**" in report and "**0 mismatches**" in report
    assert "candidates scored bit-exact, error-mean compensated, activations rounded on the " \
        "validation split" in report  # the recovery features are on by default


def test_cli_resumes_at_the_first_unfinished_stage(run_copy, capsys):
    run_dir = run_copy
    (run_dir / "validation.json").unlink()
    assert main(["pipeline", "--run-dir", str(run_dir), "--quick"]) == 0
    out = capsys.readouterr().out
    skipped = [s.name for s in STAGES if f"[{s.name}] already finished" in out]
    assert skipped == [s.name for s in STAGES[:STAGES.index(
        next(s for s in STAGES if s.name == "deploy"))]]
    assert "[deploy] running" in out and "[report] running" in out
    assert json.loads((run_dir / "validation.json").read_text())["mismatches"] == 0


def test_cli_refuses_another_configuration_in_the_same_run_dir(run_copy, capsys):
    run_dir = run_copy
    assert main(["pipeline", "--run-dir", str(run_dir), "--quick", "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert "agn pipeline: error: " in err and "another configuration" in err
    assert "'train.seed': (0, 7)" in err


def test_runner_restarts_a_killed_stage_and_everything_after(tmp_path):
    calls = []

    def make(name, fail=False):
        def run(ctx):
            calls.append(name)
            if fail and calls.count(name) == 1:
                raise KeyboardInterrupt  # a kill in the middle of the stage
            (tmp_path / f"{name}.out").write_text(name)
            return {"n": len(calls)}
        return Stage(name, (f"{name}.out",), run)

    stages = [make("a"), make("b", fail=True), make("c")]
    with pytest.raises(KeyboardInterrupt):
        run_stages(stages, tmp_path, {"k": 1}, None, log=lambda s: None)
    status = run_stages(stages, tmp_path, {"k": 1}, None, log=lambda s: None)
    assert calls == ["a", "b", "b", "c"]
    assert list(status.finished) == ["a", "b", "c"]
    (tmp_path / "b.out").unlink()
    run_stages(stages, tmp_path, {"k": 1}, None, log=lambda s: None)
    assert calls[4:] == ["b", "c"]
    with pytest.raises(ValueError, match="another configuration"):
        RunStatus.load_or_new(tmp_path, {"k": 2})
    # the recorded configuration is normalized (e.g. migrated, defaults filled) before comparing
    def normalize(d):
        return {"new": 0, **d}

    assert RunStatus.load_or_new(tmp_path, {"k": 1, "new": 0}, normalize).finished
    with pytest.raises(ValueError, match=r"'new': \(0, 1\)"):
        RunStatus.load_or_new(tmp_path, {"k": 1, "new": 1}, normalize)


def test_choose_point_picks_the_cheapest_within_the_loss():
    front = [{"energy": 0.7, "error": 0.2}, {"energy": 0.8, "error": 0.05},
             {"energy": 0.9, "error": 0.03}, {"energy": 1.0, "error": 0.02}]
    assert choose_point(front, 0.02, 0.01)["energy"] == 0.9
    assert choose_point(front, 0.02, 0.05)["energy"] == 0.8
    with pytest.raises(ValueError, match="no front point"):
        choose_point(front[:2], 0.0, 0.01)


@pytest.mark.parametrize("path", sorted((__import__("pathlib").Path(__file__).resolve()
                                         .parents[3] / "configs").glob("*.yaml")))
def test_shipped_configs_build(path):
    import yaml

    from agn.config import check_train, load_pipeline_config

    data = yaml.safe_load(path.read_text())
    assert data["version"] == 2
    cfg = load_pipeline_config([path])
    assert load_pipeline_config([path.stem]) == cfg  # also found by name
    tc = cfg.train_config()
    assert tc.model == data["train"]["model"] and tc.data == data["train"]["data"]
    assert tc.float_stage.lr == data["train"]["float_stage"]["lr"]
    assert tc.noise.lam == data["train"]["noise"]["lam"]
    assert np.all(np.array(tc.epochs) >= 1)
    if tc.data == "digits":
        check_train(tc)


def test_unknown_training_field_is_refused():
    from agn.config import ConfigError

    with pytest.raises(ConfigError, match="train.float: unknown field; expected one of model"):
        PipelineConfig.from_dict({"train": {"float": {"lr": 0.1}}})


def test_search_cli_reruns_the_search_of_a_run(search_copy, tmp_path, capsys):
    run_dir = search_copy
    assert main(["search", "--run-dir", str(run_dir), "--gen", "2", "--pop", "6",
                 "--no-baseline"]) == 0
    evaluated = (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()
    assert 6 <= len(evaluated) <= 13  # two generations of 6, and the exact network
    data = json.loads((run_dir / "pareto.json").read_text())
    assert data["evaluations"] == len(evaluated) and len(data["hypervolume"]) == 2
    assert "prefix_cache" not in data  # results only: a resumed search writes the same file
    printed = capsys.readouterr().out
    cache = json.loads(printed[printed.index("{"):])["prefix_cache"]  # the summary reports reuse
    assert cache["candidates"] >= 6 and 0 <= cache["layers_reused"] <= cache["layers_run"]
    assert cache["hit_rate"] == pytest.approx(cache["layers_reused"] / cache["layers_run"])
    chosen = json.loads((run_dir / "chosen_assignment.json").read_text())
    assert chosen["details"]["genome"] in [p["genome"] for p in data["front"]]
    capsys.readouterr()
    assert main(["search", "--run-dir", str(tmp_path / "nothing")]) == 2
    assert "agn search: error: " in capsys.readouterr().err.replace("\n", " ")


def test_run_pipeline_until_a_stage_runs_the_prefix(run_copy, capsys):
    from agn.pipeline import run_pipeline

    run_dir = run_copy
    (run_dir / "search" / "network.json").unlink()  # export_search must run again, search not
    cfg = PipelineConfig.quick()
    status = run_pipeline(run_dir, cfg, progress=False, until="export_search")
    out = capsys.readouterr().out
    assert "[export_search] running" in out and "[search]" not in out
    assert (run_dir / "search" / "network.json").exists()
    assert list(status.finished) == [s.name for s in STAGES][:6]  # later records forgotten
    with pytest.raises(ValueError, match="until expected one of .*'report'.*got 'bogus'"):
        run_pipeline(run_dir, cfg, until="bogus")


def test_a_signed_evoapprox_catalog_trains_7_bit_activations_and_searches(tmp_path):
    from agn.config import deep_merge, epochs_data
    from agn.layers import approx_layers
    from agn.pipeline import run_pipeline
    from agn.pipeline.context import Context

    cfg = PipelineConfig.quick(deep_merge({"train": {"catalog": "evo:mul8s_*"}},
                                          epochs_data((2, 1, 1, 1))))
    run_pipeline(tmp_path, cfg, progress=False, log=lambda s: None, until="search")
    model = Context(tmp_path, cfg, progress=False).model("noise")
    assert {layer.input_quant.int_range() for _, layer in approx_layers(model)} == {(0, 127)}
    matched = em.read_assignment(tmp_path)
    assert all(layer.multiplier.startswith("evo:mul8s_") for layer in matched.layers)
    rows = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    names = [layer.name for layer in matched.layers]
    assert rows and all(r[n].startswith("evo:mul8s_") for r in rows for n in names)


def test_match_collects_missing_stats_and_deploy_exports_a_training_run(run_copy, tmp_path,
                                                                        capsys):
    run_dir = run_copy
    for name in ("operand_stats.npz", "assignment.json", "network.json", "network.npz",
                 "validation.json"):
        (run_dir / name).unlink()
    assert main(["match", "--run-dir", str(run_dir), "--samples", "64", "--fields", "8"]) == 0
    assert "collected operand statistics" in capsys.readouterr().out
    stats = em.load_stats(run_dir)
    assert [s.name for s in stats] == [s.name for s in em.read_sigmas(run_dir)]
    assert em.read_assignment(run_dir).layers
    assert main(["deploy", str(run_dir), "--n-inputs", "2", "--no-target-check"]) == 0
    assert "exported the trained model" in capsys.readouterr().err
    chosen = json.loads((run_dir / "chosen_assignment.json").read_text())
    assert deploy.load(run_dir).multipliers() == {r["name"]: r["multiplier"]
                                                  for r in chosen["layers"]}
    assert json.loads((run_dir / "validation.json").read_text())["mismatches"] == 0
    from agn.export import ExportError
    from agn.run import export_run

    with pytest.raises(ExportError, match="holds no finished quantized stage"):
        export_run(tmp_path)
    capsys.readouterr()
    assert main(["deploy", str(tmp_path), "--no-target-check"]) == 2
    assert "agn deploy: error: export_run:" in capsys.readouterr().err


def test_search_cli_random_init_uses_marlins_genome_and_scores_the_seed_point(search_copy):
    run_dir = search_copy
    assert main(["search", "--run-dir", str(run_dir), "--init", "random", "--gen", "1",
                 "--pop", "6", "--no-baseline"]) == 0
    data = json.loads((run_dir / "pareto.json").read_text())
    assert data["encoding"] == "raw"
    evaluated = [json.loads(line) for line in
                 (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()]
    assert [e["generation"] for e in evaluated].count(1) == 6
    # the exact network, which a random population seldom holds, is scored for the choice
    assert [0] * len(data["layers"]) in [e["genome"] for e in evaluated]
    assert data["evaluations"] == len(evaluated)
    points = json.loads((run_dir / "search" / "points.json").read_text())
    seed = next(p for p in points if p["label"] == "error-model assignment")
    assert 0.0 <= seed["error"] <= 1.0  # scored although random init never evaluates it
