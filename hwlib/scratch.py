"""Scratch directories that a killed process does not leave behind for good.

``tempfile.TemporaryDirectory`` removes its directory on return and on exceptions, but not when
the process is killed (SIGKILL, or SIGTERM without a handler). A scratch directory's name carries
the creating process id; the next :func:`scratch_dir` with the same prefix removes the
directories of processes that no longer run.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep(prefix: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove ``root/<prefix><pid>-*`` directories whose process is gone; return them."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    for d in base.glob(f"{prefix}*"):
        m = pattern.match(d.name)
        if m and d.is_dir() and int(m[1]) != os.getpid() and not _alive(int(m[1])):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@contextmanager
def scratch_dir(prefix: str, root: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary directory ``<prefix><pid>-XXXX``, removed on exit; stale ones of dead
    processes with the same prefix are removed first."""
    sweep(prefix, root)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", dir=root) as tmp:
        yield Path(tmp)
