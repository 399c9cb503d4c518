"""Ctrl-C during ``agn train`` / ``agn pipeline`` ends with one line naming the stage that
stopped and the command that resumes it, exit status 130 (issue 16 item 6)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import agn.pipeline.stages as pipeline_stages
from agn.cli import INTERRUPTED, main

REPO = Path(__file__).resolve().parents[2]


def test_sigint_during_training_names_the_stage_and_the_resume_command(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "-c", "digits_lenet5", "--run-dir", str(run), "--stage", "float",
            "--float_stage.epochs", "500", "--progress_bar", "false"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AGN_TRACEBACK", None)
    proc = subprocess.Popen([sys.executable, "-m", "agn", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "float" / "last.ckpt").exists():  # interrupt inside the fit
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == INTERRUPTED == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"agn train: stopped by Ctrl-C in stage 'float' of {run}; resume "
                           f"with: agn train -c digits_lenet5 --run-dir {run} "), last
    assert "Traceback" not in err
    assert not (run / "float" / "result.json").exists()


def test_ctrl_c_in_a_pipeline_stage(tmp_path, capsys, monkeypatch):
    def interrupted(ctx):
        raise KeyboardInterrupt

    stages = tuple(s if s.name != "qat" else s.__class__(s.name, s.outputs, interrupted)
                   for s in pipeline_stages.STAGES)
    monkeypatch.setattr(pipeline_stages, "STAGES", stages)
    run = tmp_path / "r"
    argv = ["pipeline", "--run-dir", str(run), "--quick", "--epochs", "1", "1", "1", "1"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"agn pipeline: stopped by Ctrl-C in stage 'qat' of {run}; resume with: "
                       f"agn pipeline --run-dir {run} --quick --epochs 1 1 1 1")
