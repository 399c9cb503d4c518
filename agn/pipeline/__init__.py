"""The end-to-end pipeline: train, learn tolerances, match, search, retrain, export, deploy and
report."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from agn.config import PipelineConfig, check_pipeline, document, load_pipeline_config
from agn.config.schema import RESULT_NEUTRAL
from agn.pipeline.runner import RunStatus, Stage, run_stages
from agn.run import STATUS_FILE
from agn.threads import torch_threads

__all__ = [
    "STATUS_FILE",
    "PipelineConfig",
    "RunStatus",
    "Stage",
    "normalize_recorded",
    "run_pipeline",
    "run_stages",
]


def normalize_recorded(recorded: dict) -> dict:
    """A configuration ``pipeline.json`` recorded (any version) as the current document."""
    return document(load_pipeline_config([recorded]))


def with_neutral(recorded: dict, current: dict) -> dict:
    """``recorded`` with the settings results do not depend on (``RESULT_NEUTRAL``, such as the
    prefix cache budget) taken from ``current``, so that changing them does not refuse a run
    directory."""
    out = dict(recorded)
    for path in RESULT_NEUTRAL:
        *blocks, name = path.split(".")
        src, dst = current, out
        for b in blocks:
            src = src.get(b, {})
            dst[b] = dict(dst.get(b, {}))
            dst = dst[b]
        if name in src:
            dst[name] = src[name]
    return out


def run_pipeline(run_dir: str | Path, cfg: PipelineConfig | None = None, progress: bool = True,
                 log: Callable[[str], None] = print, workers: int | None = None,
                 scheduler: str | None = None, threads: int = 1,
                 until: str | None = None, extra: Sequence[Stage] = ()) -> RunStatus:
    """Run (or resume) every stage in ``run_dir``, or the stages up to and including ``until``;
    returns the recorded status. ``extra`` stages (e.g. the operating points) run before the
    report.

    The configuration is checked (catalog, model, dataset, data directory) before anything is
    written: a refused one leaves ``run_dir`` as it was. ``threads`` torch CPU threads are used
    inside the run and the previous count is restored afterwards.
    """
    from agn.pipeline.context import Context
    from agn.pipeline.stages import STAGES

    names = [s.name for s in STAGES]
    if until is not None and until not in names:
        raise ValueError(f"run_pipeline: until expected one of {names}, got {until!r}")
    stages = STAGES[:names.index(until) + 1] if until else STAGES
    if extra and stages[-1].name == "report":
        stages = (*stages[:-1], *extra, stages[-1])
    cfg = cfg or PipelineConfig()
    check_pipeline(cfg)
    ctx = Context(Path(run_dir), cfg, progress, workers, scheduler, threads)
    current = document(cfg)
    with torch_threads(threads):
        return run_stages(stages, run_dir, current, ctx, log,
                          lambda rec: with_neutral(normalize_recorded(rec), current))
