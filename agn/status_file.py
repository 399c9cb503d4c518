"""``pipeline.json`` read with a clear error (torch-free, for light commands such as
``agn match``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read_status", "recorded_catalog"]


def read_status(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The contents of a ``pipeline.json`` (``config`` and ``finished``).

    Raises:
        ValueError: the file is not a JSON object (truncated, corrupt), naming it and what to do.
    """
    path = Path(path)
    redo = ("delete it to check and rerun every stage of this run directory, or choose a new "
            "--run-dir")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc}); the file is truncated or corrupt: "
                         f"{redo}") from None
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise ValueError(f"{path}: expected a JSON object with 'config' and 'finished'; {redo}")
    return data


def recorded_catalog(config: dict[str, Any]) -> str | None:
    """The multiplier catalog of recorded configuration data (version 2 keeps it in ``train``,
    version 1 at the top level), or None when it names none."""
    train = config.get("train")
    catalog = train.get("catalog") if isinstance(train, dict) else config.get("catalog")
    return str(catalog) if catalog else None
