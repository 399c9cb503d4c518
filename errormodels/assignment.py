"""The per-layer multiplier assignment and its ``assignment.json`` file."""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from errormodels.errors import AssignmentError, read_json
from hwlib.fileio import atomic_write_json

ASSIGNMENT_FILE = "assignment.json"


@dataclass(frozen=True)
class LayerAssignment:
    """One layer's chosen multiplier with the prediction that justified it."""

    name: str
    multiplier: str
    sigma: float
    tolerance: float
    predicted_std: float
    predicted_mean: float
    relative_power: float
    multiplications: int


@dataclass(frozen=True)
class Assignment:
    """Layer -> multiplier mapping with its relative multiplication energy.

    Attributes:
        family: the catalog spec the multipliers were chosen from (e.g. ``"marlin:*"``).
        rule: ``"cheapest"`` or ``"nearest"`` (or another producer's label, e.g. a search).
        energy: ``sum_l c_l P(m_l) / sum_l c_l P(exact)``.
        power_source: the power table(s) behind ``energy``.
        layers: per layer records, in model order.
        metric: what was compared to the tolerance (``"std"`` or ``"rms"``).
    """

    family: str
    rule: str
    energy: float
    power_source: str
    layers: tuple[LayerAssignment, ...]
    metric: str = "std"

    def specs(self) -> dict[str, str]:
        """Module name -> multiplier spec, the form ``approximate_`` takes."""
        return {layer.name: layer.multiplier for layer in self.layers}

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``assignment.json``."""
        return {"family": self.family, "rule": self.rule, "metric": self.metric,
                "energy": float(self.energy), "power_source": self.power_source,
                "layers": [asdict(layer) for layer in self.layers]}

    @classmethod
    def from_json(cls, obj: Any, where: str = "assignment") -> Assignment:
        """Parse and validate the JSON object :meth:`to_json` produces."""
        if not isinstance(obj, dict):
            raise AssignmentError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        keys = ("family", "rule", "energy", "power_source", "layers")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise AssignmentError(f"{where}: missing keys {missing}")
        if not isinstance(obj["layers"], list) or not obj["layers"]:
            raise AssignmentError(f"{where}: 'layers' must be a non-empty list")
        layers = tuple(_layer(r, i, where) for i, r in enumerate(obj["layers"]))
        energy = obj["energy"]
        if not isinstance(energy, (int, float)) or not math.isfinite(energy) or energy < 0:
            raise AssignmentError(f"{where}: energy must be a finite number >= 0, got {energy!r}")
        return cls(family=str(obj["family"]), rule=str(obj["rule"]), energy=float(energy),
                   power_source=str(obj["power_source"]), layers=layers,
                   metric=str(obj.get("metric", "std")))


_FLOATS = ("sigma", "tolerance", "predicted_std", "predicted_mean", "relative_power")


def _layer(r: Any, i: int, where: str) -> LayerAssignment:
    keys = ("name", "multiplier", *_FLOATS, "multiplications")
    if not isinstance(r, dict) or any(k not in r for k in keys):
        got = sorted(r) if isinstance(r, dict) else r
        raise AssignmentError(f"{where}: layer {i} must have keys {list(keys)}, got {got}")
    for k in _FLOATS:
        if isinstance(r[k], bool) or not isinstance(r[k], (int, float)):
            raise AssignmentError(f"{where}: layer {r['name']!r} {k}={r[k]!r}, expected a number")
    if isinstance(r["multiplications"], bool) or not isinstance(r["multiplications"], int):
        raise AssignmentError(f"{where}: layer {r['name']!r} multiplications="
                              f"{r['multiplications']!r}, expected an integer")
    return LayerAssignment(name=str(r["name"]), multiplier=str(r["multiplier"]),
                           **{k: float(r[k]) for k in _FLOATS},
                           multiplications=int(r["multiplications"]))


def write_assignment(path: str | os.PathLike[str], assignment: Assignment) -> Path:
    """Write ``assignment.json`` atomically (``path`` may be a run directory); return the path."""
    p = Path(path)
    if p.is_dir():
        p = p / ASSIGNMENT_FILE
    return atomic_write_json(p, assignment.to_json())


def read_assignment(path: str | os.PathLike[str]) -> Assignment:
    """Read ``assignment.json`` (a file, or a run directory holding one)."""
    obj, p = read_json(path, ASSIGNMENT_FILE, "assignment", AssignmentError)
    return Assignment.from_json(obj, str(p))
