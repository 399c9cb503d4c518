"""Host validation: the generated C against the NumPy reference, bit for bit on every layer."""
from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.cost import CostParams, LayerCost, estimate, totals
from deploy.emit_pulp import Firmware, check_prefix, emit
from deploy.errors import IRError
from deploy.host import HostRun, build_host, compiler_version, host_flags, run_host_checked
from deploy.network import Network
from deploy.reference import run
from deploy.target import Target
from hwlib.fileio import atomic_write_json
from hwlib.scratch import scratch_dir

log = logging.getLogger(__name__)
REPORT_NAME = "validation.json"


@dataclass(frozen=True)
class LayerReport:
    """One node's comparison.

    Attributes:
        name: IR node name.
        op: IR op.
        dtype: ``"uint8"`` or ``"int32"``.
        shape: IR shape per sample.
        mismatches: elements (over all inputs) where C and NumPy differ.
        checksums: per input, the wrapping uint32 sum of the reference output.
        firmware_checksums: per input, the checksum the firmware itself took of the node's
            buffer right after it ran (DORY's per-layer check, the code the target prints).
        multiplier: the layer's spec (approximable layers).
        csr_word: the CSR 0x7D0 word the layer writes (MARLIN layers).
        first_mismatch: ``(input, flat index, expected, got)`` of the first difference.
    """

    name: str
    op: str
    dtype: str
    shape: tuple[int, ...]
    mismatches: int
    checksums: tuple[int, ...]
    firmware_checksums: tuple[int, ...]
    multiplier: str | None
    csr_word: int | None
    first_mismatch: tuple[int, int, int, int] | None

    @property
    def checksum_ok(self) -> bool:
        """True when the firmware's checksums equal the reference's on every input."""
        return self.firmware_checksums == self.checksums


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of one network's host validation (written as ``validation.json``).

    ``cost`` is the cost model's estimate per layer; ``firmware`` is the emitted application
    (not part of the JSON document).
    """

    network: str
    firmware_dir: str
    inputs: int
    input_shape: tuple[int, ...]
    input_sha256: str
    layers: tuple[LayerReport, ...]
    compiler: str
    flags: tuple[str, ...]
    sanitize: bool
    cost: tuple[LayerCost, ...]
    firmware: Firmware = field(repr=False, compare=False)

    @property
    def mismatches(self) -> int:
        """Total mismatching elements over every layer and input (0 when bit-exact)."""
        return sum(l.mismatches for l in self.layers)

    @property
    def checksum_mismatches(self) -> tuple[str, ...]:
        """Nodes, in execution order, whose firmware checksum differs from the reference's."""
        return tuple(l.name for l in self.layers if not l.checksum_ok)

    @property
    def ok(self) -> bool:
        """True when every layer matched on every input, checksums included."""
        return self.mismatches == 0 and not self.checksum_mismatches

    def to_json(self) -> dict[str, Any]:
        """The JSON document written to ``validation.json``."""
        doc = asdict(self)
        del doc["firmware"]
        doc["inputs"] = {"count": self.inputs, "shape": list(self.input_shape),
                         "sha256": self.input_sha256}
        del doc["input_shape"], doc["input_sha256"]
        doc["mismatches"] = self.mismatches
        doc["checksum_mismatches"] = list(self.checksum_mismatches)
        doc["ok"] = self.ok
        doc["memory_plan"] = self.firmware.plan.to_json()
        doc["tiling_plan"] = self.firmware.tiling.to_json()
        doc["cost"] = {"model": asdict(CostParams()), "layers": doc.pop("cost"),
                       "totals": totals(self.cost)}
        for l in doc["layers"]:
            l["csr_word"] = None if l["csr_word"] is None else f"0x{l['csr_word']:08X}"
        return doc


def compare_layers(fw: Firmware, ref: dict[str, np.ndarray], got: HostRun
                   ) -> tuple[LayerReport, ...]:
    """Every node of a host run against the reference outputs: elements and checksums."""
    out = []
    for i, layer in enumerate(fw.layers):
        r = ref[layer.name].astype(np.int64).reshape(len(ref[layer.name]), -1)
        g = got.outputs[layer.name].astype(np.int64).reshape(r.shape)
        bad = r != g
        first = None
        if bad.any():
            n, flat = (int(v) for v in np.argwhere(bad)[0])
            first = (n, flat, int(r[n, flat]), int(g[n, flat]))
        out.append(LayerReport(
            name=layer.name, op=layer.op, dtype=layer.dtype, shape=layer.shape,
            mismatches=int(bad.sum()), checksums=tuple(int(v) % 2**32 for v in r.sum(axis=1)),
            firmware_checksums=tuple(int(v) for v in got.checksums[:, i]),
            multiplier=layer.multiplier, csr_word=layer.csr_word, first_mismatch=first))
    return tuple(out)


def validate_many(nets: Sequence[Network], inputs: Sequence[np.ndarray],
                  out_dirs: Sequence[str | os.PathLike[str]], sanitize: bool = False,
                  jobs: int = 2, prefixes: Sequence[str] | None = None,
                  target: Target | None = None) -> list[ValidationReport]:
    """Emit, compile into ONE host program, run and compare several networks.

    Each network gets ``<out_dir>/firmware/`` and ``<out_dir>/validation.json``. Inputs are
    checked (by the reference run) before any file is written.

    Args:
        nets: the networks.
        inputs: per network, uint8 inputs (N, C, H, W).
        out_dirs: per network, its output directory.
        sanitize: build with ``-fsanitize=address,undefined``.
        jobs: parallel compiler processes.
        prefixes: C prefixes (``n0``, ``n1``, ... by default).
        target: target facts the firmware is planned and tiled for (``deploy/data/target.json``
            by default; a small ``l1_bytes`` forces small tiles).
    """
    if not (len(nets) == len(inputs) == len(out_dirs)):
        raise IRError(f"validate_many: expected as many input batches and directories as "
                      f"networks ({len(nets)}), got {len(inputs)} and {len(out_dirs)}")
    prefixes = [check_prefix(p) for p in (prefixes or [f"n{i}" for i in range(len(nets))])]
    if any(len(x) == 0 for x in inputs):
        raise IRError("validate_many: expected at least one input per network, got an empty "
                      "batch")
    refs = [run(net, x) for net, x in zip(nets, inputs)]
    log.info("validate: emitting %d network(s)", len(nets))
    fws = [emit(net, Path(d) / "firmware", prefix=p, reference_input=np.asarray(x)[0],
                target=target)
           for net, x, d, p in zip(nets, inputs, out_dirs, prefixes)]
    with scratch_dir("agn-deploy-") as tmp:
        log.info("validate: compiling %d network(s) into one host program", len(nets))
        exe = build_host(fws, tmp, sanitize=sanitize, jobs=jobs)
        log.info("validate: running on %d input(s)", sum(len(x) for x in inputs))
        outs = run_host_checked(exe, fws, [np.asarray(x) for x in inputs], tmp)
    version = compiler_version()
    reports = []
    for net, x, fw, ref, got, d in zip(nets, inputs, fws, refs, outs, out_dirs):
        xb = np.ascontiguousarray(np.asarray(x, np.uint8))
        rep = ValidationReport(
            network=net.name, firmware_dir=str(fw.directory), inputs=len(xb),
            input_shape=tuple(xb.shape[1:]), input_sha256=hashlib.sha256(xb.tobytes()).hexdigest(),
            layers=compare_layers(fw, ref, got), compiler=version, flags=host_flags(sanitize),
            sanitize=sanitize, cost=estimate(net, fw.tiling, plan=fw.plan), firmware=fw)
        atomic_write_json(Path(d) / REPORT_NAME, rep.to_json())
        reports.append(rep)
    return reports


def validate(net: Network, inputs: np.ndarray, out_dir: str | os.PathLike[str],
             sanitize: bool = False, prefix: str = "net", target: Target | None = None
             ) -> ValidationReport:
    """Emit ``net`` into ``<out_dir>/firmware`` (for ``target``), compile and run it on the host,
    compare every layer with the NumPy reference and write ``<out_dir>/validation.json``."""
    return validate_many([net], [inputs], [out_dir], sanitize=sanitize, jobs=1,
                         prefixes=[prefix], target=target)[0]
