"""Training epoch cost: noise training and approximate retraining / QAT, in one process.

Starts from a run directory whose float stage has finished (default: the default configuration,
LeNet-5 on sklearn digits, built in the temp directory), and per repeat runs on a fresh copy
the QAT, noise and retrain stages (in that order: each starts from the previous one) for
``--epochs`` epochs each, the retrain stage on the run's error-model assignment. A Lightning
callback times every training epoch (validation excluded); the first epoch of each stage is
left out as warm-up. Prints the median epoch of each stage and the ratios noise / QAT and
retrain / QAT (of medians, and the median of per-repeat ratios).

    python bench/training_epochs.py [--run-dir R] [--epochs 4] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl

import errormodels as em
from agn.config import PipelineConfig, document, epochs_data, load_pipeline_config
from agn.pipeline import run_pipeline
from agn.run import pipeline_config
from agn.training import run_stage

STAGES = ("qat", "noise", "retrain")


class EpochTimer(pl.Callback):
    """Seconds of each training epoch (its batches, not its validation)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self.times.append(time.perf_counter() - self._t0)


def _source(run_dir: Path | None, threads: int) -> Path:
    if run_dir is not None:
        return run_dir
    run_dir = Path(tempfile.gettempdir()) / "agn_bench_search_scoring"  # shared with search bench
    run_pipeline(run_dir, PipelineConfig(), progress=False, threads=threads, until="match",
                 log=lambda _: None)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    """Time the stages' epochs and print the ratios to QAT."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, help="a run whose float and match stages finished")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    src = _source(args.run_dir, args.threads)
    cfg = load_pipeline_config([document(pipeline_config(src))],
                               epochs_data((1, args.epochs, args.epochs, args.epochs)))
    epochs: dict[str, list[float]] = {s: [] for s in STAGES}
    ratios: dict[str, list[float]] = {"noise": [], "retrain": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            run = Path(tmp) / f"r{r}"
            run.mkdir()
            shutil.copytree(src / "float", run / "float")
            shutil.copy(src / em.ASSIGNMENT_FILE, run / em.ASSIGNMENT_FILE)
            medians = {}
            for stage in STAGES:
                timer = EpochTimer()
                assignment = str(run / em.ASSIGNMENT_FILE) if stage == "retrain" else None
                run_stage(stage, run, cfg.train_config(assignment, args.threads), [timer])
                kept = timer.times[1:] or timer.times
                epochs[stage] += kept
                medians[stage] = statistics.median(kept)
            for stage in ratios:
                ratios[stage].append(medians[stage] / medians["qat"])
            print(f"repeat {r + 1}: " + ", ".join(f"{s} {1e3 * medians[s]:.0f} ms/epoch"
                                                  for s in STAGES), flush=True)
    med = {s: statistics.median(v) for s, v in epochs.items()}
    print(f"{cfg.train.model} on {cfg.train.data}, {args.threads} thread(s), {args.epochs} epochs "
          f"per stage (first left out), {args.repeats} repeats: median epoch "
          + ", ".join(f"{s} {1e3 * med[s]:.0f} ms" for s in STAGES))
    for stage in ratios:
        print(f"  {stage} epoch / QAT epoch: {med[stage] / med['qat']:.2f} (median of per-repeat "
              f"ratios {statistics.median(ratios[stage]):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
