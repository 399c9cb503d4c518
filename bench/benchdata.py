"""What the issue-17 benches share: where the datasets are, and their JSON output.

The data directory comes from ``--data-dir`` or the environment variable ``AGN_DATA_DIR``; it
holds one folder per dataset (``mnist/``, ``fashion-mnist/``) with the IDX files.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from hwlib.fileio import atomic_write_json

ENV = "AGN_DATA_DIR"


def add_data_dir(ap: argparse.ArgumentParser) -> None:
    """The ``--data-dir`` option (default: the ``AGN_DATA_DIR`` environment variable)."""
    ap.add_argument("--data-dir", type=Path, default=os.environ.get(ENV),
                    help=f"directory holding mnist/ and fashion-mnist/ with their IDX files "
                    f"(default: ${ENV})")


def dataset_dir(data_dir: Path | str | None, name: str) -> str:
    """``<data_dir>/<name>``, or SystemExit naming the option and the variable."""
    if data_dir is None:
        raise SystemExit(f"no data directory: pass --data-dir or set {ENV}")
    path = Path(data_dir) / name
    if not path.is_dir():
        raise SystemExit(f"{path} is not a directory (expected the {name} IDX files there)")
    return str(path)


def write_results(path: Path, results: dict) -> None:
    """Write ``results`` as JSON and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, results)
    print(json.dumps(results, indent=1, default=float))
    print(f"\nresults: {path}")


def command_line(script: str, args: argparse.Namespace) -> str:
    """The bench's command with every option as parsed (the data and run directories left out,
    so the line reads the same on any machine)."""
    opts = []
    for k, v in vars(args).items():
        if k in ("data_dir", "run_dir", "work_dir"):
            continue
        flag = f"--{k.replace('_', '-')}"
        if isinstance(v, bool):
            opts += [flag] if v else []
        elif isinstance(v, (list, tuple)):
            opts.append(f"{flag} {' '.join(map(str, v))}")
        else:
            opts.append(f"{flag} {v}")
    return " ".join([f"python bench/{script}", *opts])


def first_reaching(hv_curve: list[float], target: float) -> int | None:
    """1-based number of evaluations after which ``hv_curve`` first reaches ``target``."""
    hit = np.flatnonzero(np.asarray(hv_curve) >= target - 1e-12)
    return int(hit[0]) + 1 if hit.size else None
