"""The per-layer multiplier assignment and its versioned JSON file (one reader, one writer).

An assignment file (``assignment.json``, ``chosen_assignment.json``), version 1 (layer-wise)::

    {"version": 1, "catalog": "marlin:*", "rule": "cheapest", "metric": "std",
     "energy": 0.6926, "power_source": "MARLIN UMC 65 nm post-synthesis, 500 MHz",
     "details": {...},
     "layers": [{"name": "features.0", "multiplier": "marlin:127", "sigma": 0.0307,
                 "tolerance": 880.5, "predicted_std": 824.4, "predicted_mean": -931.4,
                 "relative_power": 0.7587, "multiplications": 9600}, ...]}

Only ``version`` and ``layers`` (each entry with ``name`` and ``multiplier``) are required. The
file-level fields say where the assignment comes from: the catalog it was chosen from, the rule or
producer (``cheapest``, ``nearest``, a search), the compared error metric, its relative energy and
power source, and ``details``, a JSON object of producer-specific facts (a search's accuracy and
genome, a seed's sigma scale). The per-layer fields after ``multiplier`` are the error model's
reasons for its choice and the layer's multiplication count. Unknown keys are refused.

Several assignments over one network (the seeds of a search; a set of operating points) share
one file, ``search/seeds.json``::

    {"version": 1, "assignments": [{"catalog": ..., "layers": [...]}, ...]}

Version 2 lets a layer entry hold ``groups`` instead of ``multiplier``: one multiplier per
output-channel group, ``{"name": "conv1", "groups": [{"out": [0, 16], "multiplier": "marlin:3"},
...]}``, or with an ``"in": [lo, hi]`` range per (output group, input group) block (kernel
granularity; see :mod:`hwlib.blocks`). The writer writes version 1 when no layer has groups, so
layer-wise files stay what they were and older readers keep reading them; version 1 files are
read as they are (a v1 entry holding ``groups`` is refused).

Files written before the format had a version are migrated on reading: ``assignment.json``
(``family`` became ``catalog``), ``chosen_assignment.json`` (``accuracy``, ``genome``,
``exact_accuracy``, ``max_loss`` moved into ``details``), ``search/seeds.json`` (a mapping
sigma scale -> {layer: spec}; the scale goes to ``details["sigma_scale"]``) and a plain
``{layer: spec}`` mapping.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hwlib.anonymous import adopt
from hwlib.blocks import Blocks, LayerSpec, as_blocks, check_blocks
from hwlib.errors import AssignmentError
from hwlib.fileio import atomic_write_json
from hwlib.multiplier import Multiplier
from hwlib.registry import get

ASSIGNMENT_FILE = "assignment.json"
VERSION = 2
"""The newest assignment format; 2 added a layer's ``groups``."""

_DETAIL_FLOATS = ("sigma", "tolerance", "predicted_std", "predicted_mean", "relative_power")
_ENTRY_KEYS = ("name", "multiplier", "groups", *_DETAIL_FLOATS, "multiplications")
_FILE_STRINGS = ("catalog", "rule", "metric", "power_source")
_FILE_KEYS = ("version", *_FILE_STRINGS, "energy", "details", "layers")


@dataclass(frozen=True, kw_only=True)
class LayerAssignment:
    """One layer's multiplier (or block multipliers), with the facts its producer recorded
    (None when not recorded).

    Attributes:
        name: the approximable layer's name (module name in torch, node name in the IR).
        multiplier: hwlib spec string of its multiplier; None when ``groups`` holds them.
        groups: its output-channel groups or (output, input) blocks, each with a multiplier
            (:class:`hwlib.blocks.Block`), in canonical order; None for one multiplier.
        sigma: the layer's learned noise sigma.
        tolerance: ``|sigma| * std(y)``, the error the layer tolerates.
        predicted_std: predicted output error std under ``multiplier``.
        predicted_mean: predicted output error mean under ``multiplier``.
        relative_power: power of ``multiplier`` relative to its family's exact one.
        multiplications: the layer's multiplications per sample.
    """

    name: str
    multiplier: str | None = None
    groups: Blocks | None = None
    sigma: float | None = None
    tolerance: float | None = None
    predicted_std: float | None = None
    predicted_mean: float | None = None
    relative_power: float | None = None
    multiplications: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise AssignmentError(f"layer assignment: expected a non-empty layer name, got "
                                  f"{self.name!r}")
        if (self.multiplier is None) == (self.groups is None):
            given = "both" if self.multiplier is not None else "neither"
            raise AssignmentError(f"layer {self.name!r}: expected either 'multiplier' or "
                                  f"'groups', got {given}")
        if self.groups is not None:
            object.__setattr__(self, "groups", as_blocks(self.groups,
                                                         f"layer {self.name!r} groups"))
        elif not isinstance(self.multiplier, str) or not self.multiplier:
            raise AssignmentError(f"multiplier for layer {self.name!r}: expected a spec string "
                                  f"such as 'marlin:17', got {self.multiplier!r}")

    @property
    def spec(self) -> LayerSpec:
        """The layer's multiplier spec, or its blocks."""
        return self.groups if self.groups is not None else self.multiplier  # type: ignore

    def check_shape(self, out_channels: int, in_channels: int) -> None:
        """Raise unless the groups fit a layer of that many channels (see
        :func:`hwlib.blocks.check_blocks`); a single multiplier always fits."""
        if self.groups is not None:
            check_blocks(self.groups, out_channels, in_channels, f"layer {self.name!r} groups")

    def to_json(self) -> dict[str, Any]:
        """The layer's JSON entry (fields left None are omitted)."""
        out = {k: getattr(self, k) for k in _ENTRY_KEYS if getattr(self, k) is not None}
        if self.groups is not None:
            out["groups"] = [b.to_json() for b in self.groups]
        return out


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """Layer -> multiplier for every approximable layer of one network, with its provenance.

    Attributes:
        layers: one entry per layer, in network order, each name once.
        catalog: the catalog spec the multipliers were chosen from (e.g. ``"marlin:*"``).
        rule: how they were chosen: ``"cheapest"`` or ``"nearest"`` (error model), or another
            producer's label (e.g. a search's).
        metric: what the error model compared with the tolerance (``"std"`` or ``"rms"``).
        energy: ``sum_l c_l P(m_l) / sum_l c_l P(exact)``.
        power_source: the power table(s) behind ``energy``.
        details: producer-specific JSON facts (a search's accuracy and genome, a seed's scale).
    """

    layers: tuple[LayerAssignment, ...]
    catalog: str | None = None
    rule: str | None = None
    metric: str | None = None
    energy: float | None = None
    power_source: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers or not all(isinstance(x, LayerAssignment) for x in self.layers):
            raise AssignmentError(f"assignment: expected at least one LayerAssignment, got "
                                  f"{list(self.layers)!r:.200}")
        seen: set[str] = set()
        for x in self.layers:
            if x.name in seen:
                raise AssignmentError(f"assignment: layer {x.name!r} is assigned twice")
            seen.add(x.name)
        for k in _FILE_STRINGS:
            if getattr(self, k) is not None and not isinstance(getattr(self, k), str):
                raise AssignmentError(f"assignment: {k} expected a string, got "
                                      f"{getattr(self, k)!r}")
        e = self.energy
        if e is not None and (isinstance(e, bool) or not isinstance(e, (int, float))
                              or not math.isfinite(e) or e < 0):
            raise AssignmentError(f"assignment: energy must be a finite number >= 0, got {e!r}")
        if not isinstance(self.details, Mapping):
            raise AssignmentError(f"assignment: details expected a JSON object, got "
                                  f"{self.details!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names, in order."""
        return tuple(x.name for x in self.layers)

    @property
    def grouped(self) -> bool:
        """True when some layer holds groups (the file then needs version 2)."""
        return any(x.groups is not None for x in self.layers)

    def specs(self) -> dict[str, LayerSpec]:
        """Layer name -> multiplier spec (or the layer's blocks)."""
        return {x.name: x.spec for x in self.layers}

    def multipliers(self) -> dict[str, Multiplier]:
        """Layer name -> hwlib multiplier (every spec resolved), for a layer-wise assignment.

        Raises:
            AssignmentError: a spec hwlib does not know, naming the layer; a layer holding
                groups (use :meth:`canonical_specs`).
        """
        out = {}
        for x in self.layers:
            if x.multiplier is None:
                raise AssignmentError(f"layer {x.name!r} holds groups (one multiplier per "
                                      f"channel group), not one multiplier; use canonical_specs")
            out[x.name] = _resolve(x.multiplier, x.name)
        return out

    def canonical_specs(self) -> dict[str, LayerSpec]:
        """Layer name -> every spec resolved and written as hwlib spells it (blocks kept).

        Raises:
            AssignmentError: a spec hwlib does not know, naming the layer.
        """
        out: dict[str, LayerSpec] = {}
        for x in self.layers:
            if x.groups is None:
                out[x.name] = _resolve(x.spec, x.name).spec  # type: ignore[arg-type]
            else:
                out[x.name] = tuple(replace(b, multiplier=_resolve(b.multiplier, x.name).spec)
                                    for b in x.groups)
        return out

    def check_names(self, expected: Sequence[str], what: str = "assignment") -> None:
        """Raise unless the layer names are exactly ``expected`` (see :func:`check_names`)."""
        check_names(self.names, expected, what)

    def to_json(self, version: bool = True) -> dict[str, Any]:
        """The JSON object of an assignment file (``version`` False inside a set)."""
        out: dict[str, Any] = {"version": VERSION if self.grouped else 1} if version else {}
        for k in ("catalog", "rule", "metric", "energy", "power_source"):
            v = getattr(self, k)
            if v is not None:
                out[k] = float(v) if k == "energy" else v
        if self.details:
            out["details"] = dict(self.details)
        out["layers"] = [x.to_json() for x in self.layers]
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "assignment") -> Assignment:
        """Parse one assignment: the version-1 object :meth:`to_json` writes, or an older form
        (see the module docstring).

        Raises:
            AssignmentError: anything else, naming ``where`` and the bad part; a set of several
                assignments (read those with :func:`read_assignments`).
        """
        found = _parse(obj, where)
        if isinstance(found, list):
            raise AssignmentError(f"{where}: holds {len(found)} assignments, expected one; read "
                                  f"an assignment set with read_assignments")
        return found

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], **fields: Any) -> Assignment:
        """An assignment from ``{layer name: spec, hwlib Multiplier or blocks}`` (plus file
        fields); a Multiplier hwlib cannot name is adopted by content (``table:sha256:<hex>``,
        see :mod:`hwlib.anonymous`)."""
        layers = []
        for name, value in mapping.items():
            if isinstance(value, Multiplier):
                value = adopt(value).spec
            if isinstance(value, (tuple, list)):
                layers.append(LayerAssignment(name=name,
                                              groups=as_blocks(value, f"layer {name!r} groups")))
                continue
            if not isinstance(value, str):
                raise AssignmentError(f"multiplier for layer {name!r}: expected a spec string "
                                      f"such as 'marlin:17' (or a hwlib Multiplier), got "
                                      f"{value!r}")
            layers.append(LayerAssignment(name=name, multiplier=value))
        return cls(layers=tuple(layers), **fields)


AssignmentLike = Assignment | Mapping[str, Any] | str | os.PathLike[str]


def as_assignment(source: AssignmentLike) -> Assignment:
    """An Assignment from an Assignment, an assignment file (or a run directory holding
    ``assignment.json``), its decoded JSON, or a plain ``{layer: spec or Multiplier}`` mapping."""
    if isinstance(source, Assignment):
        return source
    if isinstance(source, (str, os.PathLike)):
        return read_assignment(source)
    if isinstance(source, Mapping):
        if "version" in source or isinstance(source.get("layers"), list):
            return Assignment.from_json(source)
        return Assignment.from_mapping(source)
    raise AssignmentError(f"assignment: expected an Assignment, a path or a mapping layer -> "
                          f"spec, got {type(source).__name__}")


def check_names(given: Iterable[str], expected: Sequence[str], what: str = "assignment") -> None:
    """The one layer-name check: ``given`` must name every layer of ``expected`` exactly once.

    Raises:
        AssignmentError: listing the missing and the unknown names, and the expected layers.
    """
    given = list(given)
    missing = [n for n in expected if n not in given]
    unknown = [n for n in given if n not in expected]
    if missing or unknown:
        raise AssignmentError(f"{what}: expected exactly its {len(expected)} approximable layers "
                              f"{list(expected)}; missing {missing}, unknown {unknown}")


def read_assignment(path: str | os.PathLike[str]) -> Assignment:
    """Read an assignment file (or ``assignment.json`` of a run directory), any version."""
    obj, p = _load(path)
    return Assignment.from_json(obj, str(p))


def write_assignment(path: str | os.PathLike[str], assignment: Assignment) -> Path:
    """Write an assignment file atomically (``path`` may be a run directory); return its path."""
    p = Path(path)
    if p.is_dir():
        p = p / ASSIGNMENT_FILE
    return atomic_write_json(p, assignment.to_json())


def read_assignments(path: str | os.PathLike[str]) -> list[Assignment]:
    """Read an assignment set (``search/seeds.json``); one assignment reads as a list of one."""
    obj, p = _load(path)
    found = _parse(obj, str(p))
    return found if isinstance(found, list) else [found]


def write_assignments(path: str | os.PathLike[str], assignments: Sequence[Assignment]) -> Path:
    """Write several assignments over one network to one file atomically; return its path."""
    if not assignments or not all(isinstance(a, Assignment) for a in assignments):
        raise AssignmentError(f"write_assignments: expected at least one Assignment, got "
                              f"{list(assignments)!r:.200}")
    version = VERSION if any(a.grouped for a in assignments) else 1
    return atomic_write_json(path, {"version": version,
                                    "assignments": [a.to_json(version=False)
                                                    for a in assignments]})


def _load(path: str | os.PathLike[str]) -> tuple[Any, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / ASSIGNMENT_FILE
    try:
        return json.loads(p.read_text()), p
    except FileNotFoundError:
        raise AssignmentError(f"assignment: no file {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AssignmentError(f"assignment: {p} is not valid JSON ({exc}); the file is "
                              f"truncated or corrupt: write it again ('agn match' writes "
                              f"assignment.json) or give another file") from None


def _parse(obj: Any, where: str) -> Assignment | list[Assignment]:
    """One assignment, or the list of an assignment set, from any supported JSON form."""
    if not isinstance(obj, dict):
        raise AssignmentError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "version" in obj:
        v = obj["version"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= VERSION:
            raise AssignmentError(f"{where}: version {v!r} is not one this reader knows "
                                  f"(1..{VERSION}); a newer program wrote it?")
        if "assignments" in obj:
            extra = sorted(set(obj) - {"version", "assignments"})
            items = obj["assignments"]
            if extra or not isinstance(items, list) or not items:
                raise AssignmentError(f"{where}: an assignment set holds 'version' and a "
                                      f"non-empty list 'assignments', got keys {sorted(obj)}")
            return [_versioned(a, f"{where}: assignments[{i}]", True, v)
                    for i, a in enumerate(items)]
        return _versioned(obj, where, False, v)
    return _legacy(obj, where)


def _versioned(obj: Any, where: str, inner: bool, version: int) -> Assignment:
    if not isinstance(obj, dict):
        raise AssignmentError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    allowed = _FILE_KEYS[1:] if inner else _FILE_KEYS
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise AssignmentError(f"{where}: unknown keys {unknown}; expected {list(allowed)}")
    return _assignment(obj, obj.get("details", {}), where, version)


def _legacy(obj: dict[str, Any], where: str) -> Assignment | list[Assignment]:
    """Files written before the version field: see the module docstring."""
    if "layers" in obj:
        fields = {k: v for k, v in obj.items() if k in _FILE_KEYS and k != "details"}
        if "family" in obj:  # the error model's assignment.json
            fields["catalog"] = obj["family"]
            fields.setdefault("metric", "std")
        details = {k: v for k, v in obj.items() if k not in _FILE_KEYS and k != "family"}
        return _assignment(fields, details, where)
    if obj and all(isinstance(v, dict) for v in obj.values()):  # search/seeds.json
        out = []
        for key, specs in obj.items():
            try:
                scale = float(key)
            except ValueError:
                raise AssignmentError(f"{where}: expected sigma scales as keys of a seeds file, "
                                      f"got {key!r}") from None
            if not all(isinstance(s, str) for s in specs.values()):
                raise AssignmentError(f"{where}: seed {key!r} expected layer -> spec strings, "
                                      f"got {specs!r:.200}")
            out.append(Assignment.from_mapping(specs, details={"sigma_scale": scale}))
        return out
    if obj and all(isinstance(v, str) for v in obj.values()):
        return Assignment.from_mapping(obj)
    raise AssignmentError(f"{where}: expected an assignment ({{\"version\": 1, \"layers\": "
                          f"[{{\"name\": ..., \"multiplier\": ...}}, ...]}}) or a mapping layer -> "
                          f"spec, got {json.dumps(obj)[:120]!r}")


def _assignment(obj: Mapping[str, Any], details: Any, where: str,
                version: int = 1) -> Assignment:
    rows = obj.get("layers")
    if not isinstance(rows, list) or not rows:
        raise AssignmentError(f"{where}: 'layers' must be a non-empty list of {{\"name\": ..., "
                              f"\"multiplier\": ...}} objects, got {rows!r:.120}")
    if not isinstance(details, dict):
        raise AssignmentError(f"{where}: details expected a JSON object, got {details!r:.120}")
    layers = tuple(_entry(r, i, where, version) for i, r in enumerate(rows))
    try:
        return Assignment(layers=layers, details=details,
                          **{k: obj.get(k) for k in (*_FILE_STRINGS, "energy")})
    except AssignmentError as exc:
        raise AssignmentError(f"{where}: {exc}") from None


def _entry(r: Any, i: int, where: str, version: int) -> LayerAssignment:
    if isinstance(r, dict) and "groups" in r and version < 2:
        raise AssignmentError(
            f"{where}: layers[{i}] ({r.get('name')!r}) holds 'groups' (one multiplier per "
            f"channel group), which format version 2 added; this file says version {version}")
    one = isinstance(r, dict) and isinstance(r.get("multiplier"), str) and "groups" not in r
    many = isinstance(r, dict) and isinstance(r.get("groups"), list) and "multiplier" not in r
    if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not (one or many):
        raise AssignmentError(f"{where}: layers[{i}] expected 'name' and either 'multiplier' "
                              f"(a spec string) or 'groups' (a list of blocks), got {r!r:.200}")
    unknown = sorted(set(r) - set(_ENTRY_KEYS))
    if unknown:
        raise AssignmentError(f"{where}: layer {r['name']!r} has unknown keys {unknown}; "
                              f"expected {list(_ENTRY_KEYS)}")
    for k in _DETAIL_FLOATS:
        v = r.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise AssignmentError(f"{where}: layer {r['name']!r} {k}={v!r}, expected a number")
    c = r.get("multiplications")
    if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 0):
        raise AssignmentError(f"{where}: layer {r['name']!r} multiplications={c!r}, expected an "
                              f"integer >= 0")
    try:
        return LayerAssignment(name=r["name"], multiplier=r.get("multiplier"),
                               groups=r.get("groups"),
                               **{k: None if r.get(k) is None else float(r[k])
                                  for k in _DETAIL_FLOATS},
                               multiplications=c)
    except AssignmentError as exc:
        raise AssignmentError(f"{where}: {exc}") from None


def _resolve(spec: str, layer: str) -> Multiplier:
    try:
        return get(spec)
    except (ValueError, OSError) as exc:
        raise AssignmentError(f"multiplier for layer {layer!r}: {exc}") from None
