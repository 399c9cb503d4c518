"""Resumable stage runner: a stage runs only when it has not finished in this run directory."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agn.run import STATUS_FILE, RunInterrupted
from hwlib.fileio import atomic_write_json


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
    def load_or_new(cls, run_dir: Path, config: dict,
                    normalize: Callable[[dict], dict] | None = None) -> RunStatus:
        """The status of ``run_dir``; refuses a directory made with another configuration.

        ``normalize`` brings the recorded configuration to the form of ``config`` before they are
        compared (e.g. migrates an older version and fills fields added since with defaults).
        """
        path = run_dir / STATUS_FILE
        if not path.exists():
            return cls(config)
        data = json.loads(path.read_text())
        recorded = data.get("config", {})
        if normalize is not None:
            recorded = normalize(recorded)
        if recorded != config:
            diff = _differences(recorded, config)
            raise ValueError(f"{path}: this run directory was made with another configuration "
                             f"(differences, old -> new: {diff}); choose a new --run-dir")
        return cls(config, data.get("finished", {}))

    def save(self, run_dir: Path) -> None:
        """Write ``pipeline.json`` atomically."""
        atomic_write_json(run_dir / STATUS_FILE, {"config": self.config,
                                                  "finished": self.finished})


def _differences(old: dict, new: dict, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{dotted field: (old, new)} of the fields that differ (nested mappings descended)."""
    out: dict[str, tuple[Any, Any]] = {}
    for k in [*old, *(k for k in new if k not in old)]:
        a, b, key = old.get(k), new.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(_differences(a, b, f"{key}."))
        elif a != b:
            out[key] = (a, b)
    return out


def run_stages(stages: Sequence[Stage], run_dir: str | Path, config: dict, ctx: Any,
               log: Callable[[str], None] = print,
               normalize: Callable[[dict], dict] | None = None) -> RunStatus:
    """Run the stages in order, skipping those finished earlier (their outputs still present).

    A stage whose recorded outputs disappeared is run again, and so is every later stage; a
    stage that runs also forgets the records of stages beyond ``stages`` (a run of a prefix of
    the pipeline), so they run again next time. ``normalize`` brings a recorded configuration
    to the current form (:meth:`RunStatus.load_or_new`).
    """
    run_dir = Path(run_dir)
    status = RunStatus.load_or_new(run_dir, config, normalize)
    run_dir.mkdir(parents=True, exist_ok=True)
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
        try:
            summary = dict(stage.run(ctx) or {})
        except RunInterrupted:
            raise
        except KeyboardInterrupt as exc:
            raise RunInterrupted(run_dir, stage.name) from exc
        missing = [o for o in stage.outputs if not (run_dir / o).exists()]
        if missing:
            raise RuntimeError(f"stage {stage.name!r} finished without writing {missing}")
        summary["seconds"] = round(time.time() - t0, 2)
        status.finished[stage.name] = summary
        status.save(run_dir)
        log(f"[{stage.name}] done in {summary['seconds']:.1f} s")
    return status
