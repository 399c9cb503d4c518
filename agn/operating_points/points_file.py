"""``operating_points.json``: a set of operating points over one network (version 1).

::

    {"version": 1, "catalog": "bam:*", "max_circuits": 4, "circuits": ["bam:v2h3", ...],
     "factors": [0.3, 1.0, 2.0], "exact": {"val_accuracy": 0.97, "test_accuracy": 0.96},
     "details": {...},
     "points": [{"name": "p0", "factor": 0.3, "energy": 0.71, "val_accuracy": 0.96,
                 "test_accuracy": 0.95, "extra_parameters": 0, "parameter_overhead": 0.0,
                 "assignment": {"catalog": ..., "layers": [...]}}, ...]}

``assignment`` is an assignment object as :mod:`hwlib.assignment` writes it inside a set.
``extra_parameters`` counts the parameters a point adds to the shared network (its own
per-channel scale and offset of every layer; the first point's fold into the network itself),
``parameter_overhead`` the same relative to the network's weights and biases. Accuracies are
the integer network's (bit-exact scorer). Unknown keys are refused.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwlib.assignment import Assignment
from hwlib.fileio import atomic_write_json

POINTS_FILE = "operating_points.json"
VERSION = 1
_POINT_KEYS = ("name", "factor", "energy", "val_accuracy", "test_accuracy", "extra_parameters",
               "parameter_overhead", "assignment")
_SET_KEYS = ("version", "catalog", "max_circuits", "circuits", "factors", "exact", "details",
             "points")


class PointsFileError(ValueError):
    """An operating-point set or file that does not hold what version 1 expects."""


def _number(v: Any, what: str, optional: bool = True) -> float | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PointsFileError(f"{what}: expected a finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True, kw_only=True)
class OperatingPoint:
    """One operating point: its assignment and what it costs and scores.

    Attributes:
        name: label (``p0``, ``p1``, ...), also the firmware's point index order.
        assignment: layer -> multiplier (with its energy).
        factor: the tolerance factor it was selected with (None: another producer).
        energy: relative multiplication energy.
        val_accuracy, test_accuracy: integer network accuracies (None until measured).
        extra_parameters: parameters this point adds to the shared network.
        parameter_overhead: ``extra_parameters`` over the network's weights and biases.
    """

    name: str
    assignment: Assignment
    factor: float | None = None
    energy: float
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    extra_parameters: int = 0
    parameter_overhead: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PointsFileError(f"operating point: expected a non-empty name, got "
                                  f"{self.name!r}")
        if not isinstance(self.assignment, Assignment):
            raise PointsFileError(f"operating point {self.name!r}: expected an Assignment, got "
                                  f"{type(self.assignment).__name__}")
        for k in ("factor", "energy", "val_accuracy", "test_accuracy", "parameter_overhead"):
            _number(getattr(self, k), f"operating point {self.name!r}: {k}",
                    optional=k not in ("energy", "parameter_overhead"))
        n = self.extra_parameters
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise PointsFileError(f"operating point {self.name!r}: extra_parameters expected an "
                                  f"integer >= 0, got {n!r}")

    def to_json(self) -> dict[str, Any]:
        """The point's JSON object."""
        out = {k: getattr(self, k) for k in _POINT_KEYS[:-1]}
        out["assignment"] = self.assignment.to_json(version=False)
        return out


@dataclass(frozen=True, kw_only=True)
class OperatingPointSet:
    """Several operating points over one network.

    Attributes:
        points: the points, in firmware index order; layer names identical in all.
        catalog: the catalog they were chosen from.
        max_circuits: the distinct-circuit limit (None: none, e.g. MARLIN).
        factors: the tolerance factors of the selection.
        exact: accuracies of the all-exact integer network (``val_accuracy``, ``test_accuracy``).
        details: producer facts (epochs of joint retraining, firmware memory, validation).
    """

    points: tuple[OperatingPoint, ...]
    catalog: str
    max_circuits: int | None = None
    factors: tuple[float, ...] = ()
    exact: Mapping[str, float] = field(default_factory=dict, hash=False)
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))
        if not self.points:
            raise PointsFileError("operating-point set: expected at least one point, got none")
        names = [p.name for p in self.points]
        if len(set(names)) != len(names):
            raise PointsFileError(f"operating-point set: point names {names} repeat")
        first = self.points[0].assignment.names
        for p in self.points[1:]:
            p.assignment.check_names(first, f"operating point {p.name!r}")
        k = self.max_circuits
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise PointsFileError(f"operating-point set: max_circuits expected an integer >= 1 "
                                  f"or None, got {k!r}")

    @property
    def circuits(self) -> tuple[str, ...]:
        """The distinct multipliers of all points, sorted."""
        return tuple(sorted({x.multiplier for p in self.points for x in p.assignment.layers}))

    def to_json(self) -> dict[str, Any]:
        """The document :func:`write_points` writes."""
        return {"version": VERSION, "catalog": self.catalog, "max_circuits": self.max_circuits,
                "circuits": list(self.circuits), "factors": list(self.factors),
                "exact": dict(self.exact), "details": dict(self.details),
                "points": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, obj: Any, where: str = POINTS_FILE) -> OperatingPointSet:
        """Parse a version-1 document (PointsFileError naming ``where`` otherwise)."""
        if not isinstance(obj, dict) or obj.get("version") != VERSION:
            raise PointsFileError(f"{where}: expected a JSON object with version {VERSION}, got "
                                  f"{json.dumps(obj)[:80]!r}")
        unknown = sorted(set(obj) - set(_SET_KEYS))
        if unknown:
            raise PointsFileError(f"{where}: unknown keys {unknown}; expected {list(_SET_KEYS)}")
        rows = obj.get("points")
        if not isinstance(rows, list) or not rows:
            raise PointsFileError(f"{where}: 'points' must be a non-empty list")
        points = []
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or set(r) - set(_POINT_KEYS) or "assignment" not in r:
                raise PointsFileError(f"{where}: points[{i}] expected keys {list(_POINT_KEYS)}, "
                                      f"got {sorted(r) if isinstance(r, dict) else r!r}")
            fields = {k: v for k, v in r.items() if k != "assignment"}
            points.append(OperatingPoint(
                assignment=Assignment.from_json({"version": 1, **r["assignment"]},
                                                f"{where}: points[{i}].assignment"), **fields))
        if not isinstance(obj.get("catalog"), str):
            raise PointsFileError(f"{where}: 'catalog' expected a spec string, got "
                                  f"{obj.get('catalog')!r}")
        out = cls(points=tuple(points), catalog=obj["catalog"],
                  max_circuits=obj.get("max_circuits"), factors=tuple(obj.get("factors", ())),
                  exact=obj.get("exact", {}), details=obj.get("details", {}))
        if obj.get("circuits") is not None and list(out.circuits) != obj["circuits"]:
            raise PointsFileError(f"{where}: 'circuits' {obj['circuits']} differ from the "
                                  f"points' multipliers {list(out.circuits)}")
        return out


def write_points(path: str | os.PathLike[str], points: OperatingPointSet) -> Path:
    """Write ``operating_points.json`` atomically (``path`` may be a run directory)."""
    p = Path(path)
    return atomic_write_json(p / POINTS_FILE if p.is_dir() else p, points.to_json())


def read_points(path: str | os.PathLike[str]) -> OperatingPointSet:
    """Read ``operating_points.json`` (a file, or a run directory holding one)."""
    p = Path(path)
    p = p / POINTS_FILE if p.is_dir() else p
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise PointsFileError(f"no operating points: {p} does not exist (run 'agn "
                              f"operating-points' first)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PointsFileError(f"{p}: not valid JSON ({exc}); the file is truncated or "
                              f"corrupt: run 'agn operating-points' again") from None
    return OperatingPointSet.from_json(obj, str(p))
