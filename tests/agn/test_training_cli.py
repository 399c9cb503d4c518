"""``agn train``: shipped configs, dotted overrides, a tiny run end to end, errors."""
import json

import pytest
import torch
import yaml

from agn.cli import main
from agn.cli.train import build_config
from agn.config import shipped_configs


def test_shipped_configs_parse():
    assert {"digits_lenet5", "marlin_mnist", "resnet8_fashion_mnist"} <= set(shipped_configs())
    for name in shipped_configs():
        cfg = build_config([name], {})
        assert cfg.model and cfg.data
    assert build_config(["marlin_mnist"], {}).model == "marlin_mnist"


def test_print_config_merges_files_and_overrides(tmp_path, capsys):
    extra = tmp_path / "x.yaml"
    extra.write_text("qat: {epochs: 7}\ndata_args: {shift: 2}\n")
    assert main(["train", "-c", "digits_lenet5", "-c", str(extra), "--noise.lam", "0.7",
                 "--data_args.root", "/data", "--qat.milestones", "[2, 4]", "--print-config"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    out = doc["train"]
    assert doc["version"] == 2
    assert out["qat"]["epochs"] == 7 and out["qat"]["lr"] == 0.005     # file merged, not replaced
    assert out["qat"]["milestones"] == [2, 4] and out["noise"]["lam"] == 0.7
    assert out["data_args"] == {"batch_size": 64, "shift": 2, "root": "/data"}


def test_tiny_float_run(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "-c", "digits_lenet5", "--run-dir", str(run), "--stage", "float",
            "--float_stage.epochs", "1", "--limit_train_batches", "3", "--limit_val_batches", "1",
            "--progress_bar", "false", "--seed", "7"]
    threads = torch.get_num_threads()
    assert main(argv + ["--threads", str(threads + 1)]) == 0
    assert torch.get_num_threads() == threads  # process-wide settings restored
    assert not torch.are_deterministic_algorithms_enabled()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["stage"] == "float" and result["seed"] == 7 and 0 <= result["test_acc"] <= 1
    assert (run / "float" / "last.ckpt").exists() and (run / "float" / "result.json").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == 7
    assert list((run / "logs" / "float").glob("**/metrics.csv"))
    assert list((run / "tb" / "float").glob("**/events.out.tfevents.*"))


def test_errors(tmp_path, capsys):
    assert main(["train", "-c", "nosuchconfig", "--print-config"]) == 2
    assert "agn train: error: " in capsys.readouterr().err
    assert main(["train", "-c", "digits_lenet5"]) == 2  # no --run-dir
    assert "--run-dir is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--stage", "bogus"])


@pytest.mark.parametrize("option, value, field", [
    ("--seed", "abc", "train.seed"), ("--noise.lam", "[1", "train.noise.lam"),
    ("--float_stage.epochs", "ten", "train.float_stage.epochs"),
    ("--qat.milestones", "5", "train.qat.milestones"),
    ("--data_args.batch_size", "x", "data_args.batch_size")])
def test_type_errors_on_the_command_line_are_one_line(option, value, field, tmp_path, capsys):
    argv = ["train", "-c", "digits_lenet5", "--run-dir", str(tmp_path / "r"), option, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agn train: error: ") and field in err[0], err
    assert not (tmp_path / "r").exists()
