"""Runtime operating points of one integer network: weights stored once, and per point the
multiplier of every approximable layer and the bias and per-channel requantisation of every
conv/linear (a per-point BatchNorm becomes a per-point integer scale and offset in the
requantisation form ``((acc + bias) * mult + 2^(shift-1)) >> shift``).

    pts = PointNetwork.from_networks([net_p0, net_p1, net_p2])   # same weights, same graph
    deploy.run(pts.network_at(1), x)                                # the reference at point 1
    rep = validate_points(pts, x, "runs/x/operating_points")         # firmware, every point
    rep.ok, rep.memory["bytes_per_extra_point"]

The firmware (``emit(..., points=pts)``) holds one table per point and
``<prefix>_set_operating_point(i)``, which points each layer at its point's multiplier (the CSR
0x7D0 word of a MARLIN level, or the product function of a table multiplier), bias and
requantisation arrays.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from deploy.emit_pulp import Firmware, emit
from deploy.errors import BuildError, IRError
from deploy.host import HostRun, _to_hwc_bytes, build_host, parse_checksums, parse_outputs
from deploy.ir import Requant, _Layer
from deploy.network import Network
from deploy.reference import run
from deploy.target import Target
from deploy.validate import LayerReport, compare_layers
from hwlib.fileio import atomic_write_json
from hwlib.scratch import scratch_dir

REPORT_NAME = "validation.json"
_PER_POINT = ("multiplier", "bias", "requant")


@dataclass(frozen=True, eq=False, kw_only=True)
class LayerPoint:
    """One layer's parameters at one operating point."""

    multiplier: str
    bias: np.ndarray
    requant: Requant | None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b))
    if isinstance(a, Requant) or isinstance(b, Requant):
        return (isinstance(a, Requant) and isinstance(b, Requant)
                and all(_same(getattr(a, f.name), getattr(b, f.name))
                        for f in dataclasses.fields(Requant)))
    return bool(a == b)


def _layer_point(node: _Layer, k: int) -> LayerPoint:
    """Layer ``node``'s parameters at operating point ``k`` (layer-wise multipliers only)."""
    if not isinstance(node.multiplier, str):
        raise IRError(f"operating point {k}: layer {node.name!r} has block-wise multipliers "
                      f"({len(node.multiplier)} blocks); operating points switch one multiplier "
                      f"per layer")
    return LayerPoint(multiplier=node.multiplier, bias=node.bias, requant=node.requant)


@dataclass(frozen=True, eq=False)
class PointNetwork:
    """An integer network with several operating points.

    Attributes:
        network: the network at point 0 (its weights are every point's).
        points: per point, ``{layer name: LayerPoint}`` for every conv/linear.
        names: a label per point.
    """

    network: Network
    points: tuple[dict[str, LayerPoint], ...]
    names: tuple[str, ...] = ()
    _nets: dict[int, Network] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise IRError(f"PointNetwork {self.network.name!r}: expected at least one point")
        names = tuple(self.names) or tuple(f"p{i}" for i in range(len(self.points)))
        if len(names) != len(self.points) or len(set(names)) != len(names):
            raise IRError(f"PointNetwork {self.network.name!r}: expected {len(self.points)} "
                          f"distinct point names, got {list(self.names)}")
        object.__setattr__(self, "names", names)
        layers = [n.name for n in self.network.nodes if isinstance(n, _Layer)]
        for i, p in enumerate(self.points):
            if sorted(p) != sorted(layers):
                raise IRError(f"PointNetwork {self.network.name!r}: point {names[i]!r} expected "
                              f"parameters for the layers {layers}, got {sorted(p)}")
        for i in range(len(self.points)):
            self.network_at(i)  # every point is a valid network (domains, int32 bounds)

    @classmethod
    def from_networks(cls, nets: Sequence[Network], names: Sequence[str] = ()) -> PointNetwork:
        """The point set of networks that differ only in their layers' multipliers, biases and
        requantisations (e.g. one export per point of a jointly retrained model).

        Raises:
            IRError: the networks differ elsewhere (weights, graph, pooling, adds), naming the
                node and the field.
        """
        nets = list(nets)
        if not nets:
            raise IRError("PointNetwork.from_networks: expected at least one network")
        base = nets[0]
        for k, net in enumerate(nets[1:], 1):
            if len(net.nodes) != len(base.nodes):
                raise IRError(f"operating point {k}: {len(net.nodes)} nodes, point 0 has "
                              f"{len(base.nodes)}")
            for a, b in zip(base.nodes, net.nodes):
                if type(a) is not type(b) or a.name != b.name:
                    raise IRError(f"operating point {k}: node {b.name!r} ({b.op}) where point 0 "
                                  f"has {a.name!r} ({a.op})")
                skip = _PER_POINT if isinstance(a, _Layer) else ()
                for f in dataclasses.fields(a):
                    if f.name not in skip and not _same(getattr(a, f.name), getattr(b, f.name)):
                        raise IRError(f"operating point {k}: node {a.name!r} field {f.name!r} "
                                      f"differs from point 0 (points share everything but the "
                                      f"layers' {', '.join(_PER_POINT)})")
                if isinstance(a, _Layer) and isinstance(b, _Layer) \
                        and (a.requant is None) != (b.requant is None):
                    raise IRError(f"operating point {k}: layer {a.name!r} requantises at one "
                                  f"point and outputs int32 at another")
        points = tuple({n.name: _layer_point(n, k) for n in net.nodes if isinstance(n, _Layer)}
                       for k, net in enumerate(nets))
        return cls(base, points, tuple(names))

    @property
    def n_points(self) -> int:
        """Number of operating points."""
        return len(self.points)

    def network_at(self, i: int) -> Network:
        """The network at point ``i`` (what the NumPy reference runs for that point)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) \
                or not 0 <= i < self.n_points:
            raise IRError(f"operating point {i!r}: expected an index in 0..{self.n_points - 1}")
        if i not in self._nets:
            p = self.points[i]
            nodes = tuple(dataclasses.replace(n, multiplier=p[n.name].multiplier,
                                              bias=p[n.name].bias, requant=p[n.name].requant)
                          if isinstance(n, _Layer) else n for n in self.network.nodes)
            self._nets[i] = Network(nodes, name=self.network.name,
                                    schema_version=self.network.schema_version)
        return self._nets[i]

    @cached_property
    def _varying(self) -> tuple[str, ...]:
        first = self.points[0]
        return tuple(n for n in first if any(
            not all(_same(getattr(first[n], f), getattr(p[n], f)) for f in _PER_POINT)
            for p in self.points[1:]))

    def varying(self) -> tuple[str, ...]:
        """The layers whose parameters differ between points (each gets per-point tables)."""
        return self._varying

    def multipliers(self, i: int) -> dict[str, str]:
        """``{approximable layer: spec}`` at point ``i``."""
        return {name: p.multiplier for name, p in self.points[i].items()}

    def memory(self) -> dict[str, Any]:
        """Bytes of the per-point tables: per varying layer and point, its bias (4 B a channel),
        requantisation multipliers (4 B) and shifts (1 B), plus its multiplier record, CSR word and
        the three table pointers (24 B on rv32); lookup tables of multipliers are not counted
        (each is emitted once, whichever points use it)."""
        per_layer = {}
        for name in self.varying():
            lp = self.points[0][name]
            c = int(lp.bias.size)
            per_layer[name] = 4 * c + (5 * c if lp.requant is not None else 0) + 24
        per_point = sum(per_layer.values())
        return {"points": self.n_points, "varying_layers": list(per_layer),
                "bytes_per_point_per_layer": per_layer, "bytes_per_extra_point": per_point,
                "bytes_all_extra_points": per_point * (self.n_points - 1)}


@dataclass(frozen=True)
class PointRun:
    """One run of the switched firmware: the point set, then every input."""

    point: int
    name: str
    mismatches: int
    changed_reference: int
    changed_firmware: int
    layers: tuple[LayerReport, ...]

    @property
    def checksum_mismatches(self) -> tuple[str, ...]:
        """Nodes whose firmware checksum differs from the reference's, in execution order."""
        return tuple(lay.name for lay in self.layers if not lay.checksum_ok)


@dataclass(frozen=True)
class PointsValidation:
    """Host validation of every operating point (``validation.json``).

    ``changed_*`` count the output elements (last node) that differ from the previous run's,
    in the reference and in the firmware: a switch changes the output exactly as the reference
    says when every run has 0 mismatches.
    """

    network: str
    firmware_dir: str
    inputs: int
    sequence: tuple[int, ...]
    runs: tuple[PointRun, ...]
    memory: dict[str, Any]
    parameter_bytes: int
    firmware: Firmware = field(repr=False, compare=False)

    @property
    def mismatches(self) -> int:
        """Mismatching elements over every run, layer and input."""
        return sum(r.mismatches for r in self.runs)

    @property
    def ok(self) -> bool:
        """True when every point matched the reference bit for bit, outputs and checksums."""
        return self.mismatches == 0 and not any(r.checksum_mismatches for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        doc = dataclasses.asdict(self)
        del doc["firmware"]
        for r in doc["runs"]:
            r["layers"] = [{k: v for k, v in lay.items()
                            if k not in ("checksums", "firmware_checksums")}
                           for lay in r["layers"] if lay["mismatches"] or lay is r["layers"][-1]]
        for r, run_ in zip(doc["runs"], self.runs):
            r["checksum_mismatches"] = list(run_.checksum_mismatches)
        doc.update(mismatches=self.mismatches, ok=self.ok,
                   memory_plan=self.firmware.plan.to_json())
        return doc


def validate_points(points: PointNetwork, inputs: np.ndarray, out_dir: str | os.PathLike[str],
                    sequence: Sequence[int] | None = None, prefix: str = "net",
                    sanitize: bool = False, target: Target | None = None) -> PointsValidation:
    """Emit the switched firmware into ``<out_dir>/firmware``, run it on the host switching
    points in ``sequence`` order (default: every point, then back to the first) and compare
    every node of every run with the NumPy reference at that point; writes
    ``<out_dir>/validation.json``."""
    seq = tuple(range(points.n_points)) + ((0,) if points.n_points > 1 else ())
    seq = tuple(int(i) for i in (seq if sequence is None else sequence))
    for i in seq:
        points.network_at(i)
    x = np.asarray(inputs)
    if len(x) == 0:
        raise IRError("validate_points: expected at least one input, got an empty batch")
    refs = [run(points.network_at(i), x) for i in seq]
    out = Path(out_dir)
    fw = emit(points.network, out / "firmware", prefix=prefix, reference_input=x[0],
              target=target, points=points)
    with scratch_dir("agn-points-") as tmp:
        exe = build_host([fw], tmp, sanitize=sanitize, jobs=1, driver="points_main.c.j2")
        got = _run_points(exe, fw, x, seq, Path(tmp))
    last = points.network.output.name
    runs = []
    for k, (i, ref, g) in enumerate(zip(seq, refs, got)):
        layers = compare_layers(fw, ref, g)
        prev_r = refs[k - 1][last] if k else ref[last]
        prev_g = got[k - 1].outputs[last] if k else g.outputs[last]
        runs.append(PointRun(point=i, name=points.names[i],
                             mismatches=sum(lay.mismatches for lay in layers),
                             changed_reference=int((ref[last] != prev_r).sum()),
                             changed_firmware=int((g.outputs[last] != prev_g).sum()),
                             layers=layers))
    rep = PointsValidation(network=points.network.name, firmware_dir=str(fw.directory),
                           inputs=len(x), sequence=seq, runs=tuple(runs),
                           memory=points.memory(), parameter_bytes=fw.parameter_bytes,
                           firmware=fw)
    atomic_write_json(out / REPORT_NAME, rep.to_json())
    return rep


def _run_points(exe: Path, fw: Firmware, x: np.ndarray, seq: Sequence[int], work: Path,
                timeout: float = 600.0) -> list[HostRun]:
    (work / "in.bin").write_bytes(_to_hwc_bytes(x))
    args = [str(exe), str(work / "in.bin")]
    for k, i in enumerate(seq):
        args += [str(i), str(work / f"out_{k}.bin")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode or proc.stderr.strip():
        raise BuildError(f"host run of the operating points failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
    sums = parse_checksums(proc.stdout, [fw] * len(seq), [len(x)] * len(seq))
    return [HostRun(parse_outputs((work / f"out_{k}.bin").read_bytes(), fw, len(x)), s)
            for k, s in enumerate(sums)]


def layer_points(points: PointNetwork, name: str) -> list[LayerPoint] | None:
    """The per-point parameters of layer ``name`` when they vary between points, else None (the
    emitter's question)."""
    if name not in points.varying():
        return None
    return [p[name] for p in points.points]
