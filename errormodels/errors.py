"""Exceptions raised by errormodels: each message names the bad value and what was expected."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StatsError(ValueError):
    """Operand statistics (a record or an ``operand_stats.npz`` file) that are malformed."""


class SigmasError(ValueError):
    """A ``sigmas.json`` entry that is missing, NaN, or does not match the operand statistics."""


def read_json(path: str | os.PathLike[str], file_name: str, what: str,
              error: type[ValueError]) -> tuple[Any, Path]:
    """The parsed JSON of ``path`` (or of ``path/file_name`` for a run directory) and the file's
    path; a missing or malformed file raises ``error`` naming it."""
    p = Path(path)
    if p.is_dir():
        p = p / file_name
    try:
        return json.loads(p.read_text()), p
    except FileNotFoundError:
        raise error(f"{what}: no file {p}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what}: {p} is not valid JSON ({exc})") from None
