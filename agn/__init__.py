"""agn: the torch side of the toolkit: quantization, noisy and approximate layers, the bit-exact
simulation engine, models, data, Lightning training, NSGA-II search, export and the pipeline.

Submodules are imported on use so that ``agn multipliers`` never pays for torch; the own-model
entry points (``agn.prepare``, ``agn.write_run``) are resolved on first access.
"""
from __future__ import annotations

import importlib
from typing import Any

#: Public callables of the package namespace -> the module defining them.
_LAZY = {"prepare": "agn.preparation", "PrepareError": "agn.preparation",
         "write_run": "agn.userrun"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agn' has no attribute {name!r}")
