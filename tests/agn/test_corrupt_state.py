"""Truncated or corrupt state files end in one message naming the file and what to do, not a
traceback (issue 16 item 8)."""
import json

import pytest
import torch

import deploy
import hwlib
from agn.cli import main
from agn.export import export
from agn.layers import calibrate, fold_bn, set_mode
from agn.models import build_model
from agn.run import StageError, load_stage_model, pipeline_config
from agn.training import StageConfig, TrainConfig, run_stage

CFG = TrainConfig(model="lenet5", data="digits", seed=0, progress_bar=False, threads=1,
                  float_stage=StageConfig(epochs=1), limit_train_batches=2, limit_val_batches=1)
TRUNCATED_ZIP = b"PK\x03\x04" + bytes(40)


def test_a_truncated_checkpoint_of_a_stopped_stage_names_the_file(tmp_path, capsys):
    ckpt = tmp_path / "float" / "last.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(TRUNCATED_ZIP)
    with pytest.raises(StageError, match=rf"{ckpt}: not a readable checkpoint .* delete it"):
        run_stage("float", tmp_path, CFG)
    argv = ["train", "-c", "digits_lenet5", "--run-dir", str(tmp_path), "--stage", "float",
            "--limit_train_batches", "2", "--progress_bar", "false"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"agn train: error: {ckpt}: not a readable")


def test_a_truncated_checkpoint_of_a_finished_stage_names_the_file(tmp_path):
    (tmp_path / "float").mkdir()
    (tmp_path / "float" / "result.json").write_text("{}")
    (tmp_path / "float" / "last.ckpt").write_bytes(TRUNCATED_ZIP[:3])
    with pytest.raises(StageError, match=r"float/last.ckpt: not a readable checkpoint"):
        load_stage_model("float", tmp_path, CFG)


@pytest.mark.parametrize("text", ["", '{"config": {"train"', "[]"])
def test_an_unreadable_pipeline_json_names_the_file(tmp_path, text, capsys):
    (tmp_path / "pipeline.json").write_text(text)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'pipeline.json'}: .*delete it"):
        pipeline_config(tmp_path)
    assert main(["search", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"agn search: error: {tmp_path / 'pipeline.json'}: ")


def test_an_assignment_file_of_bytes_names_the_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(hwlib.AssignmentError, match=rf"{path} is not valid JSON .* write it"):
        hwlib.read_assignment(path)


@pytest.mark.parametrize("corrupt", ["truncate", "bytes", "nodes"])
def test_a_corrupt_network_json_names_the_file(tmp_path, corrupt):
    torch.manual_seed(0)
    model = build_model("lenet5", 1, 28)
    fold_bn(model)
    calibrate(model, [torch.randn(8, 1, 28, 28)], 1)
    set_mode(model, "quant")
    path = deploy.save(export(model.eval(), (1, 28, 28), name="n"), tmp_path)
    text = path.read_text()
    if corrupt == "truncate":
        path.write_text(text[: len(text) // 2])
    elif corrupt == "bytes":
        path.write_bytes(b"\xff" + text.encode())
    else:
        path.write_text(json.dumps({**json.loads(text), "nodes": 5}))
    with pytest.raises(deploy.IRError, match=rf"^{path}: "):
        deploy.load(tmp_path)
