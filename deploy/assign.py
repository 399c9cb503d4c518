"""Re-assign the multipliers of a network's approximable layers (the NSGA-II genome decoder)."""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import hwlib
from deploy.errors import AssignmentError
from deploy.ir import _Layer
from deploy.network import Network


def _spec(value: object, layer: str) -> str:
    if isinstance(value, hwlib.Multiplier):
        return value.spec
    if not isinstance(value, str):
        raise AssignmentError(f"multiplier for layer {layer!r}: expected a spec string such as "
                              f"'marlin:17', got {value!r}")
    try:
        return hwlib.get(value).spec
    except ValueError as e:
        raise AssignmentError(f"multiplier for layer {layer!r}: {e}") from None


def with_multipliers(net: Network,
                     assignment: Mapping[str, str] | Sequence[str]) -> Network:
    """A copy of ``net`` whose approximable layers use the given multipliers.

    Args:
        net: the network.
        assignment: ``{layer name: spec}`` naming every approximable layer exactly once, or a
            sequence of specs in layer order (``len == len(net.layers)``).

    Raises:
        AssignmentError: unknown or missing layer names, a wrong count, a bad spec.
        IRError: the new multipliers break the IR (operand domain, int32 accumulator bound).
    """
    names = [n.name for n in net.layers]
    if isinstance(assignment, Mapping):
        missing = [n for n in names if n not in assignment]
        unknown = [k for k in assignment if k not in names]
        if missing or unknown:
            raise AssignmentError(
                f"assignment for network {net.name!r}: expected exactly its {len(names)} "
                f"approximable layers; missing {missing}, unknown {unknown}; layers: {names}")
        specs = {k: _spec(assignment[k], k) for k in names}
    elif isinstance(assignment, Sequence) and not isinstance(assignment, str):
        if len(assignment) != len(names):
            raise AssignmentError(
                f"assignment for network {net.name!r}: expected {len(names)} multipliers (one "
                f"per approximable layer {names}), got {len(assignment)}")
        specs = {k: _spec(v, k) for k, v in zip(names, assignment)}
    else:
        raise AssignmentError(f"assignment: expected a mapping or a sequence of spec strings, "
                              f"got {type(assignment).__name__}")
    nodes = tuple(dataclasses.replace(n, multiplier=specs[n.name])
                  if isinstance(n, _Layer) and n.name in specs else n for n in net.nodes)
    return Network(nodes, name=net.name, schema_version=net.schema_version)


def load_assignment(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{layer: spec}`` from an ``assignment.json`` (``{"layers": [{"name", "multiplier"}]}``)."""
    doc = json.loads(Path(path).read_text())
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        raise AssignmentError(f"{path}: expected {{\"layers\": [{{\"name\": ..., "
                              f"\"multiplier\": ...}}, ...]}}, got {str(doc)[:120]!r}")
    out: dict[str, str] = {}
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict) or "name" not in entry or "multiplier" not in entry:
            raise AssignmentError(f"{path}: layers[{i}] expected 'name' and 'multiplier', got "
                                  f"{entry!r}")
        if entry["name"] in out:
            raise AssignmentError(f"{path}: layer {entry['name']!r} assigned twice")
        out[entry["name"]] = entry["multiplier"]
    return out
