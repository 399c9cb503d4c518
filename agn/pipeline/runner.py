"""Resumable stage runner: a stage runs only when it has not finished in this run directory."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwlib.fileio import atomic_write_json

STATUS_FILE = "pipeline.json"


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: stage name (also its key in ``pipeline.json``).
        outputs: files (relative to the run directory) the stage must leave behind.
        run: ``run(ctx) -> dict`` doing the work; the dict is its summary, kept in the status.
    """

    name: str
    outputs: tuple[str, ...]
    run: Callable[[Any], dict]


@dataclass
class RunStatus:
    """What ``pipeline.json`` records: the configuration and each finished stage's summary."""

    config: dict
    finished: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load_or_new(cls, run_dir: Path, config: dict, defaults: dict | None = None) -> RunStatus:
        """The status of ``run_dir``; refuses a directory made with another configuration.

        A field the recorded configuration lacks (written before the field existed) counts as
        its value in ``defaults``.
        """
        path = run_dir / STATUS_FILE
        if not path.exists():
            return cls(config)
        data = json.loads(path.read_text())
        recorded = {**(defaults or {}), **data.get("config", {})}
        if recorded != config:
            diff = {k: (recorded.get(k), v) for k, v in config.items() if recorded.get(k) != v}
            raise ValueError(f"{path}: this run directory was made with another configuration "
                             f"(differences, old -> new: {diff}); choose a new --run-dir")
        return cls(config, data.get("finished", {}))

    def save(self, run_dir: Path) -> None:
        """Write ``pipeline.json`` atomically."""
        atomic_write_json(run_dir / STATUS_FILE, {"config": self.config,
                                                  "finished": self.finished})


def run_stages(stages: Sequence[Stage], run_dir: str | Path, config: dict, ctx: Any,
               log: Callable[[str], None] = print, defaults: dict | None = None) -> RunStatus:
    """Run the stages in order, skipping those finished earlier (their outputs still present).

    A stage whose recorded outputs disappeared is run again, and so is every later stage; a
    stage that runs also forgets the records of stages beyond ``stages`` (a run of a prefix of
    the pipeline), so they run again next time. ``defaults`` stand in for fields a recorded
    configuration lacks.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = RunStatus.load_or_new(run_dir, config, defaults)
    invalid = False
    for i, stage in enumerate(stages):
        done = stage.name in status.finished and all((run_dir / o).exists()
                                                     for o in stage.outputs)
        if done and not invalid:
            log(f"[{stage.name}] already finished, skipped")
            continue
        invalid = True
        earlier = {s.name for s in stages[:i]}
        status.finished = {k: v for k, v in status.finished.items() if k in earlier}
        log(f"[{stage.name}] running")
        t0 = time.time()
        summary = dict(stage.run(ctx) or {})
        missing = [o for o in stage.outputs if not (run_dir / o).exists()]
        if missing:
            raise RuntimeError(f"stage {stage.name!r} finished without writing {missing}")
        summary["seconds"] = round(time.time() - t0, 2)
        status.finished[stage.name] = summary
        status.save(run_dir)
        log(f"[{stage.name}] done in {summary['seconds']:.1f} s")
    return status
