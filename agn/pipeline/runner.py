"""Resumable stage runner: a stage runs only when it has not finished in this run directory.

Every finished stage records the SHA-256 of each of its outputs in ``pipeline.json``; a rerun
verifies them and runs again the first stage whose outputs are missing or changed (truncated,
edited), saying why on stderr, and every stage after it. A record written before hashes were
recorded (an older ``pipeline.json``) counts as verified when its outputs exist, and the hashes
of those files are recorded from then on.
"""
from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agn.run import STATUS_FILE, RunInterrupted, read_status
from hwlib.fileio import atomic_write_json


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: stage name (also its key in ``pipeline.json``).
        outputs: files (relative to the run directory) the stage must leave behind.
        run: ``run(ctx) -> dict`` doing the work; the dict is its summary, kept in the status.
        invalidate: files removed before the stage runs again because its outputs did not
            verify (e.g. a training stage's result and checkpoint, so it trains anew rather than
            report its recorded result).
    """

    name: str
    outputs: tuple[str, ...]
    run: Callable[[Any], dict]
    invalidate: tuple[str, ...] = ()


#: Key of a stage's record in ``pipeline.json`` holding {output: SHA-256}.
HASHES = "sha256"


def output_digest(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def output_hashes(run_dir: Path, stage: Stage) -> dict[str, str]:
    """{output: SHA-256} of a stage's outputs in ``run_dir``."""
    return {o: output_digest(run_dir / o) for o in stage.outputs}


def unverified(run_dir: Path, stage: Stage, record: dict) -> str | None:
    """Why the recorded outputs of a finished stage do not verify, or None when they do (a
    record without hashes verifies when its outputs exist)."""
    missing = [o for o in stage.outputs if not (run_dir / o).exists()]
    if missing:
        return f"{run_dir / missing[0]} is missing"
    recorded = record.get(HASHES)
    if recorded is None:
        return None
    for out in stage.outputs:
        if out in recorded and output_digest(run_dir / out) != recorded[out]:
            return (f"{run_dir / out} does not match the SHA-256 recorded when the stage "
                    f"finished (truncated or changed since)")
    return None


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
        data = read_status(path)
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
    """Run the stages in order, skipping those finished earlier whose outputs verify.

    A stage whose recorded outputs disappeared or changed (their SHA-256 differs from the one
    recorded) is run again, after removing its ``invalidate`` files and saying why on stderr,
    and so is every later stage; a stage that runs also forgets the records of stages beyond
    ``stages`` (a run of a prefix of the pipeline), so they run again next time. ``normalize``
    brings a recorded configuration to the current form (:meth:`RunStatus.load_or_new`).
    """
    run_dir = Path(run_dir)
    status = RunStatus.load_or_new(run_dir, config, normalize)
    run_dir.mkdir(parents=True, exist_ok=True)
    invalid = False
    for i, stage in enumerate(stages):
        record = status.finished.get(stage.name)
        if record is not None and not invalid:
            why = unverified(run_dir, stage, record)
            if why is None:
                if HASHES not in record:  # recorded before hashes were: adopt the files
                    record[HASHES] = output_hashes(run_dir, stage)
                    status.save(run_dir)
                log(f"[{stage.name}] already finished, skipped")
                continue
            print(f"agn pipeline: {why}; running stage {stage.name!r} again", file=sys.stderr)
            for name in stage.invalidate:
                (run_dir / name).unlink(missing_ok=True)
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
        summary[HASHES] = output_hashes(run_dir, stage)
        status.finished[stage.name] = summary
        status.save(run_dir)
        log(f"[{stage.name}] done in {summary['seconds']:.1f} s")
    return status
