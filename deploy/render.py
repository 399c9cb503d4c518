"""jinja2 rendering of the C templates (StrictUndefined) and the one atomic writer."""
from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from hwlib.fileio import atomic_write_text


def c_array(values: Iterable[int] | np.ndarray, per_line: int = 16) -> str:
    """Comma-separated integer initialiser, ``per_line`` values per line (a jinja2 filter)."""
    flat = [str(int(v)) if int(v) != -2**31 else "(-2147483647 - 1)"
            for v in np.asarray(values).ravel()]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n    ".join(lines)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment: package templates, StrictUndefined, ``c_array``/``hex`` filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("deploy", "templates"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, autoescape=False)
    env.filters["c_array"] = c_array
    env.filters["hex32"] = lambda v: f"0x{int(v):08X}u"
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` with ``context`` (an undefined name raises)."""
    return environment().get_template(template).render(**context)


def render_to(path: str | os.PathLike[str], template: str, **context: Any) -> Path:
    """Render ``template`` and write the result to ``path`` atomically; return the path."""
    return atomic_write_text(path, render(template, **context))
