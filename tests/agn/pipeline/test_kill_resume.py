"""A default pipeline killed with SIGKILL inside the float, the noise and the search stages and
resumed each time ends with the same artifacts, byte for byte, as an uninterrupted run (issue 16
item 5)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]
ARGS = ["--quick", "--epochs", "8", "2", "8", "1", "--gen", "8"]
#: Files that differ between any two runs (timings, absolute paths); TensorBoard's event files
#: (timestamps) are not compared either. Stage results are compared without their paths.
VOLATILE = {"pipeline.json", "validation.json", "retrain/config.yaml"}
PATHS = ("checkpoint", "sigmas")


def pipeline(run: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "agg"}
    return subprocess.Popen([sys.executable, "-m", "agn", "pipeline", "--run-dir", str(run),
                             *ARGS], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill_when(run: Path, started: str, finished: str, log: str | None = None) -> None:
    """Run the pipeline and SIGKILL it once ``started`` exists (and, with ``log``, once that
    metrics file was written after it: Lightning logs an epoch's training row right after the
    epoch's checkpoint, and a kill in between loses the row, as ResumableCSVLogger says), before
    ``finished`` does."""
    proc = pipeline(run)
    deadline = time.monotonic() + 300

    def ready() -> bool:
        if not (run / started).exists():
            return False
        if log is None:
            return True
        try:
            return (run / log).stat().st_mtime_ns > (run / started).stat().st_mtime_ns
        except FileNotFoundError:
            return False

    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / finished).exists(), f"the kill came after {finished} was written"


def files(run: Path) -> dict[str, Path]:
    return {p.relative_to(run).as_posix(): p for p in run.rglob("*")
            if p.is_file() and p.parts[len(run.parts)] != "tb"}


def same_checkpoint(a: Path, b: Path) -> bool:
    ca, cb = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    return all(_same(ca[k], cb[k]) for k in ("state_dict", "optimizer_states", "epoch",
                                            "global_step", "DigitsDataModule"))


def same_file(a: Path, b: Path) -> bool:
    if a.suffix == ".ckpt":
        return same_checkpoint(a, b)
    if a.name == "result.json":
        ra, rb = (json.loads(p.read_text()) for p in (a, b))
        return all(ra.pop(k) != rb.pop(k) for k in PATHS if ra.get(k)) and ra == rb
    return a.read_bytes() == b.read_bytes()


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_pipeline_killed_in_three_stages_resumes_to_identical_artifacts(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert pipeline(straight).wait() == 0
    kill_when(killed, "float/last.ckpt", "float/result.json", "logs/float/metrics.csv")
    kill_when(killed, "noise/last.ckpt", "noise/result.json", "logs/noise/metrics.csv")
    kill_when(killed, "search/search_state.json", "pareto.csv")
    assert pipeline(killed).wait() == 0
    a, b = files(straight), files(killed)
    assert a.keys() == b.keys()
    differ = [n for n in a if n not in VOLATILE and not same_file(a[n], b[n])]
    assert differ == []
