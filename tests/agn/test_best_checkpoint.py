"""The float stage keeps its best validation epoch and the next stage starts from it."""
import csv
import json

import torch

from agn.run import load_stage_model
from agn.training import StageConfig, TrainConfig, run_stage

CFG = TrainConfig(model="lenet5", data="digits", data_args={"batch_size": 64, "limit_train": 256},
                  seed=1, progress_bar=False, threads=1,
                  float_stage=StageConfig(epochs=6, lr=0.2))  # a large lr: val acc goes up and down


def test_float_stage_reports_and_hands_on_its_best_validation_epoch(tmp_path):
    res = run_stage("float", tmp_path, CFG)
    with open(tmp_path / "logs" / "float" / "metrics.csv", newline="") as f:
        per_epoch = [float(r["val/acc"]) for r in csv.DictReader(f) if r["val/acc"]][:6]
    best = torch.load(tmp_path / "float" / "best.ckpt", weights_only=False)
    last = torch.load(tmp_path / "float" / "last.ckpt", weights_only=False)
    assert best["epoch"] == per_epoch.index(max(per_epoch))  # the earliest best epoch
    assert last["epoch"] == 5
    assert abs(res.val_acc - max(per_epoch)) < 1e-6
    assert json.loads((tmp_path / "float" / "result.json").read_text())["val_acc"] == res.val_acc
    model = load_stage_model("float", tmp_path, CFG)  # what QAT starts from
    tensors = {k: v for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    assert tensors
    for k, v in tensors.items():
        assert torch.equal(v, best["state_dict"][f"model.{k}"]), k
