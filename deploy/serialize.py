"""Save and load a Network as ``network.json`` (structure) plus ``network.npz`` (tensors)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from deploy.errors import IRError
from deploy.ir import NODE_TYPES, Node, Requant
from deploy.network import SCHEMA_VERSION, Network
from hwlib import anonymous
from hwlib.blocks import Block
from hwlib.errors import TableError
from hwlib.fileio import atomic_write_bytes, atomic_write_json

JSON_NAME, NPZ_NAME = "network.json", "network.npz"


def _encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"tensor": key}
    if isinstance(value, Requant):
        return {f.name: _encode(getattr(value, f.name), f"{key}.{f.name}", arrays)
                for f in dataclasses.fields(value)}
    if isinstance(value, Block):
        return value.to_json()
    if isinstance(value, tuple):
        return [_encode(v, key, arrays) for v in value]
    return value


def _written_version(net: Network) -> int:
    """The oldest schema holding ``net``: 2 unless a layer has block-wise multipliers, so
    layer-wise networks are saved exactly as before schema 3."""
    blocks = any(isinstance(getattr(n, "multiplier", ""), tuple) for n in net.nodes)
    return SCHEMA_VERSION if blocks else 2


def to_json_and_arrays(net: Network) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON document and the tensors (keyed ``n<index>.<field>``) describing ``net``, plus
    the anonymous multiplier tables its layers use (``tables.<hex>.*``, :mod:`hwlib.anonymous`)."""
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for i, node in enumerate(net.nodes):
        doc: dict[str, Any] = {"op": node.op}
        for f in dataclasses.fields(node):
            doc[f.name] = _encode(getattr(node, f.name), f"n{i}.{f.name}", arrays)
        nodes.append(doc)
    specs = set()
    for node in net.nodes:
        m = getattr(node, "multiplier", None)
        specs.update([m] if isinstance(m, str) else [b.multiplier for b in m or ()])
    arrays.update(anonymous.table_arrays(sorted(specs)))
    return {"schema_version": _written_version(net), "name": net.name, "nodes": nodes}, arrays


def _decode(value: Any, arrays: dict[str, np.ndarray], owner: str) -> Any:
    if isinstance(value, dict) and set(value) == {"tensor"}:
        if value["tensor"] not in arrays:
            raise IRError(f"{owner}: tensor {value['tensor']!r} missing from the .npz file")
        return arrays[value["tensor"]]
    if isinstance(value, list):
        return tuple(value)
    return value


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 added the input's float normalisation: a schema-1 input records none."""
    nodes = [{**nd, "mean": None, "std": None} if isinstance(nd, dict) and nd.get("op") == "input"
             else nd for nd in doc.get("nodes", [])]
    return {**doc, "nodes": nodes, "schema_version": 2}


def _v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 lets a layer's multiplier be a list of blocks: a schema-2 document is one."""
    return {**doc, "schema_version": 3}


_MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3}
"""``{version: function}`` turning a document of that version into the next version's."""


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` brought to :data:`SCHEMA_VERSION` (IRError for an unknown version)."""
    version = doc.get("schema_version")
    while version != SCHEMA_VERSION:
        if version not in _MIGRATIONS:
            raise IRError(f"network.json: schema_version {version!r} is not supported (expected "
                          f"{SCHEMA_VERSION} or an earlier one: {sorted(_MIGRATIONS)})")
        doc = _MIGRATIONS[version](doc)
        version = doc["schema_version"]
    return doc


def from_json_and_arrays(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Network:
    """Rebuild (and re-validate) a Network from :func:`to_json_and_arrays` output (of this or an
    earlier schema version); the anonymous tables stored with it are registered first."""
    try:
        anonymous.load_tables(arrays)
    except TableError as exc:
        raise IRError(str(exc)) from None
    doc = migrate(doc)
    version = doc["schema_version"]
    nodes: list[Node] = []
    for i, nd in enumerate(doc.get("nodes", [])):
        owner = f"network.json node #{i} ({nd.get('name')!r})"
        kind = NODE_TYPES.get(nd.get("op", ""))
        if kind is None:
            raise IRError(f"{owner}: unknown op {nd.get('op')!r}; known ops: "
                          f"{sorted(NODE_TYPES)}")
        kwargs = {k: _decode(v, arrays, owner) for k, v in nd.items() if k != "op"}
        if isinstance(kwargs.get("requant"), dict):
            rq = {k: _decode(v, arrays, owner) for k, v in kwargs["requant"].items()}
            try:
                kwargs["requant"] = Requant(**rq)
            except (IRError, TypeError) as e:
                raise IRError(f"{owner}: {e}") from None
        try:
            nodes.append(kind(**kwargs))
        except TypeError as e:
            raise IRError(f"{owner}: {e}") from None
    return Network(tuple(nodes), name=doc.get("name", "net"), schema_version=version)


def save(net: Network, directory: str | os.PathLike[str]) -> Path:
    """Write ``network.json`` and ``network.npz`` into ``directory`` atomically.

    Returns the path of ``network.json``.

    The JSON records the SHA-256 of the .npz, so a mismatched pair is refused on load.
    """
    doc, arrays = to_json_and_arrays(net)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    data = buf.getvalue()
    doc["tensors"] = {"file": NPZ_NAME, "sha256": hashlib.sha256(data).hexdigest()}
    directory = Path(directory)
    atomic_write_bytes(directory / NPZ_NAME, data)
    return atomic_write_json(directory / JSON_NAME, doc)


def load(path: str | os.PathLike[str]) -> Network:
    """Load a Network from ``network.json`` (or a directory holding it) and its .npz."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    if not path.is_file():
        raise FileNotFoundError(f"network IR: no {JSON_NAME} at {path}")
    redo = "write it again (deploy.save, or 'agn deploy RUN' for a training run)"
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IRError(f"{path}: not readable JSON ({exc}); the file is truncated or corrupt: "
                      f"{redo}") from None
    tensors = doc.get("tensors") if isinstance(doc, dict) else None
    if not isinstance(tensors, dict) or not isinstance(tensors.get("sha256"), str):
        raise IRError(f"{path}: no 'tensors': {{'file': ..., 'sha256': ...}} record, so its "
                      f"tensor file cannot be verified to belong to it; save the network again "
                      f"with deploy.save")
    npz = path.parent / tensors.get("file", NPZ_NAME)
    data = npz.read_bytes()
    if hashlib.sha256(data).hexdigest() != tensors["sha256"]:
        raise IRError(f"{npz}: SHA-256 does not match the one recorded in {path}; the two files "
                      f"are from different saves")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    try:
        return from_json_and_arrays(doc, arrays)
    except IRError as exc:
        raise IRError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from None
    except (TypeError, KeyError, AttributeError, ValueError) as exc:  # a field of a wrong shape
        raise IRError(f"{path}: not a network IR this reader can build ({type(exc).__name__}: "
                      f"{exc}); {redo}") from None
