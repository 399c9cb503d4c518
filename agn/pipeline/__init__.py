"""The end-to-end pipeline: train, learn tolerances, match, search, retrain, export, deploy, report."""
from agn.pipeline.config import PipelineConfig
from agn.pipeline.runner import STATUS_FILE, RunStatus, Stage, run_stages

__all__ = ["PipelineConfig", "RunStatus", "STATUS_FILE", "Stage", "run_pipeline", "run_stages"]


def run_pipeline(run_dir, cfg: PipelineConfig | None = None, progress: bool = True,
                 log=print, workers: int | None = None, scheduler: str | None = None,
                 threads: int = 1, until: str | None = None) -> RunStatus:
    """Run (or resume) every stage in ``run_dir``, or the stages up to and including ``until``;
    returns the recorded status."""
    from pathlib import Path

    from agn.pipeline.context import Context
    from agn.pipeline.stages import STAGES

    names = [s.name for s in STAGES]
    if until is not None and until not in names:
        raise ValueError(f"run_pipeline: until expected one of {names}, got {until!r}")
    stages = STAGES[:names.index(until) + 1] if until else STAGES
    cfg = cfg or PipelineConfig()
    ctx = Context(Path(run_dir), cfg, progress, workers, scheduler, threads)
    return run_stages(stages, run_dir, cfg.to_dict(), ctx, log, PipelineConfig().to_dict())
