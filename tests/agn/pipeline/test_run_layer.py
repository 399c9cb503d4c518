"""The run-directory layer on a real run: run directories written by version 1 of the
configuration (flat pipeline.json and config.yaml) still load, export and resume."""
import json

import yaml

import deploy
from agn.cli import main
from agn.config import PipelineConfig, TrainConfig
from agn.pipeline.stages import STAGES
from agn.run import export_run, finished, load_stage_model, pipeline_config, stage_config

# pipeline.json's "config" as the code before the typed configuration wrote it (--quick)
V1_QUICK = {
    "dataset": "digits", "data_args": {"batch_size": 32}, "model": "lenet5", "catalog": "marlin:*",
    "lam": 0.2, "sigma_init": 0.1, "sigma_max": 1.0, "sigma_lr": 0.05,
    "train": {"float_stage": {"lr": 0.05, "milestones": [20]}, "qat": {"lr": 0.005},
              "noise_stage": {"lr": 0.005}, "retrain": {"lr": 0.001}},
    "seed": 0, "epochs": [12, 2, 3, 1], "n_fields": 16, "stats_samples": 128, "pop_size": 10,
    "n_gen": 3, "init": "seeded", "baseline": False, "val_samples": 0, "candidate_epochs": 0,
    "candidate_batches": 0, "max_loss": 0.01, "scales": [0.5, 2.0], "uniform_points": 6,
    "deploy_inputs": 2}


def _flat_v1(cfg: TrainConfig) -> str:
    """A stage's config.yaml as version 1 wrote it: the flat training configuration."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def test_a_version_1_run_directory_resumes_loads_and_exports(run_copy, capsys):
    run = run_copy
    status = json.loads((run / "pipeline.json").read_text())
    status["config"] = V1_QUICK
    (run / "pipeline.json").write_text(json.dumps(status))
    for stage in ("float", "qat", "noise", "retrain"):
        cfg = stage_config(run, stage)
        (run / stage / "config.yaml").write_text(_flat_v1(cfg))
        assert "version" not in yaml.safe_load((run / stage / "config.yaml").read_text())
        assert stage_config(run, stage) == cfg and finished(run, stage)
    assert pipeline_config(run) == PipelineConfig.quick()
    model = load_stage_model("noise", run)
    assert sum(p.numel() for p in model.parameters()) > 0  # built from the old config.yaml
    net = deploy.load(run)
    (run / "network.json").unlink()
    export_run(run)
    assert deploy.load(run).multipliers() == net.multipliers()
    capsys.readouterr()
    assert main(["pipeline", "--run-dir", str(run), "--quick"]) == 0
    out = capsys.readouterr().out
    assert all(f"[{s.name}] already finished" in out for s in STAGES)
    assert json.loads((run / "pipeline.json").read_text())["config"] == V1_QUICK  # nothing ran
