"""Target check of the operating-point switch: the points firmware cross-compiled for rv32 in
target mode (``-DMARLIN_TARGET``, the cross flags of :func:`deploy.rv32.cross_flags`), read back
from the object files.

Per layer whose parameters vary between points it checks that

- the point tables hold each point's data: ``<fn>_csr_pt`` the CSR 0x7D0 word of each point's
  MARLIN level (0 for other multipliers), ``<fn>_bias_pt`` / ``_mult_pt`` / ``_shift_pt`` the
  addresses of ``<fn>_bias_p<i>`` / ``_mult_p<i>`` / ``_shift_p<i>`` in point order (their
  relocations), and those arrays the point's bias and requantisation constants;
- ``<fn>_set_point(i)`` loads entry ``i`` of ``_mul_pt``, ``_bias_pt``, ``_mult_pt``,
  ``_shift_pt`` and ``_csr_pt`` and stores it into ``<fn>_params`` (the multiplier, bias and
  requantisation pointers the kernel reads) and ``<fn>_csr``;
- ``<fn>`` writes CSR 0x7D0 with the word it loads from ``<fn>_csr`` (when a point is MARLIN);
- ``<prefix>_set_operating_point`` calls every such ``<fn>_set_point``.

Addresses are followed through ``lui``/``addi``/``mv``/``add`` and the relocations of the
object file, section anchors (``.LANCHOR<n>``) included.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import hwlib
from deploy.emit_pulp import Firmware
from deploy.errors import BuildError
from deploy.points import PointNetwork, layer_points
from deploy.rv32 import _run, cross_compiler, cross_flags
from deploy.target import Target, default_target

_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*([^#]*)")
_RELOC = re.compile(r"^\s*([0-9a-f]+): (R_RISCV_\w+)\s+(\S+?)(?:\+0x([0-9a-f]+))?$")
_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
_MEM = re.compile(r"^(-?\d+)\((\w+)\)$")
_SECTION = re.compile(r"^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)")
#: Stores (no destination register) and other instructions that write none.
_NO_DEST = ("sw", "sh", "sb", "c.sw", "csrw", "csrs", "csrc", "j", "jr", "ret", "beq", "bne",
            "blt", "bge", "bltu", "bgeu", "beqz", "bnez", "blez", "bgez", "bltz", "bgtz", "tail")


@dataclass(frozen=True)
class _Symbol:
    section: int
    value: int
    size: int


@dataclass(frozen=True)
class _Object:
    """One object file: symbols, the bytes of each section and its data relocations."""

    symbols: dict[str, _Symbol]
    sections: dict[int, bytes]
    data_relocations: dict[tuple[int, int], str]    # (section, offset) -> symbol
    listing: str

    def locate(self, name: str, offset: int) -> str | None:
        """The object symbol holding ``name + offset`` (an anchor or the object itself)."""
        s = self.symbols.get(name)
        if s is None:
            return name if offset == 0 else None
        at = s.value + offset
        hits = [n for n, o in self.symbols.items() if o.section == s.section and o.size
                and o.value <= at < o.value + o.size]
        return hits[0] if len(hits) == 1 else None

    def data(self, name: str) -> bytes:
        """The bytes of object ``name`` (empty when the compiler left it out)."""
        s = self.symbols.get(name)
        return self.sections[s.section][s.value:s.value + s.size] if s else b""

    def pointers(self, name: str) -> list[str | None]:
        """The symbols the 32-bit words of ``name`` point to (by their relocations)."""
        s = self.symbols.get(name)
        if s is None:
            return []
        return [self.data_relocations.get((s.section, s.value + 4 * i))
                for i in range(s.size // 4)]


@dataclass(frozen=True)
class PointLayerCheck:
    """What the object file of one layer with operating points holds.

    Attributes:
        layer, function: IR node and C layer function.
        csr_words: expected per point (0: not MARLIN) and ``found`` in ``<fn>_csr_pt``.
        tables: per table (``bias``, ``mult``, ``shift``), whether its pointers name the
            point arrays in order and those arrays hold the point's constants.
        switched: what ``<fn>_set_point`` stores from each point table (``table[i] -> target``
            where the load is indexed by the point).
        csr_write: ``<fn>`` writes CSR 0x7D0 with the word loaded from ``<fn>_csr``.
        called: ``<prefix>_set_operating_point`` calls ``<fn>_set_point``.
    """

    layer: str
    function: str
    expected_words: tuple[int, ...]
    found_words: tuple[int, ...]
    tables: dict[str, bool]
    switched: dict[str, str]
    csr_write: bool
    called: bool

    @property
    def marlin(self) -> bool:
        """Some point runs a MARLIN level on this layer."""
        return any(self.expected_words)

    @property
    def ok(self) -> bool:
        """Every table right and switched into the parameters, the CSR written when a point is
        MARLIN, the switch called by the network's."""
        fn = self.function
        want = {f"{fn}_{t}_pt[i]": f"{fn}_params" for t in ("mul", *self.tables)}
        want[f"{fn}_csr_pt[i]"] = f"{fn}_csr"
        return (self.found_words == self.expected_words and all(self.tables.values())
                and all(self.switched.get(k) == v for k, v in want.items())
                and (self.csr_write or not self.marlin) and self.called)


@dataclass(frozen=True)
class PointsTargetReport:
    """Outcome of :func:`check_points_target`: the compiler, its flags and one check per layer
    whose parameters vary between points."""

    compiler: str
    flags: tuple[str, ...]
    layers: tuple[PointLayerCheck, ...]

    @property
    def ok(self) -> bool:
        """Every varying layer passes its check (and there is at least one)."""
        return bool(self.layers) and all(c.ok for c in self.layers)


def _read_object(cc: str, prefix: str, flags: tuple[str, ...], src: Path, obj: Path) -> _Object:
    _run([cc, *flags, "-DMARLIN_TARGET", "-c", str(src), "-o", str(obj)])
    readelf, objdump = f"{prefix}readelf", f"{prefix}objdump"
    symbols: dict[str, _Symbol] = {}
    for line in _run([readelf, "-sW", str(obj)], text=True).stdout.splitlines():
        f = line.split()
        if len(f) == 8 and f[0].endswith(":") and f[6].isdigit():
            symbols[f[7]] = _Symbol(int(f[6]), int(f[1], 16), int(f[2], 0))
    names: dict[str, int] = {}
    sections: dict[int, bytes] = {}
    raw = obj.read_bytes()
    for line in _run([readelf, "-SW", str(obj)], text=True).stdout.splitlines():
        m = _SECTION.match(line)
        if m and m.group(3) == "PROGBITS":
            index, off, size = int(m.group(1)), int(m.group(4), 16), int(m.group(5), 16)
            names[m.group(2)] = index
            sections[index] = raw[off:off + size]
    relocs: dict[tuple[int, int], str] = {}
    current = None
    for line in _run([readelf, "-rW", str(obj)], text=True).stdout.splitlines():
        m = re.match(r"^Relocation section '\.rela(\.[^']+)'", line)
        if m:
            current = names.get(m.group(1))
            continue
        f = line.split()
        if current is not None and len(f) >= 5 and f[2] == "R_RISCV_32":
            relocs[(current, int(f[0], 16))] = f[4]
    listing = _run([objdump, "-dr", "--no-show-raw-insn", str(obj)], text=True).stdout
    return _Object(symbols, sections, relocs, listing)


@dataclass(frozen=True)
class _Flow:
    """Per function of a listing: stores (object loaded from -> object stored to), CSR 0x7D0
    writes (the object the word was loaded from, or None) and calls. A load through an address
    computed from the function's first argument (``a0``, the point index) names its object
    with ``[i]``."""

    stores: dict[str, set[tuple[str | None, str | None]]]
    csr: dict[str, list[str | None]]
    calls: dict[str, set[str]]


class _Tracker:
    """Follows addresses and loaded values through one function's instructions."""

    def __init__(self, obj: _Object, csr: int, flow: _Flow, func: str) -> None:
        self.obj, self.csr, self.flow, self.func = obj, f"0x{csr:x}", flow, func
        self.base: dict[str, tuple[str, int]] = {}      # register -> (symbol, offset) address
        self.loaded: dict[str, str] = {}                # register -> object its value came from
        self.index = {"a0"}                             # registers derived from the point index

    def _address(self, mem: re.Match, reloc: tuple[str, str, int] | None) -> str | None:
        if reloc and reloc[0] in ("R_RISCV_LO12_I", "R_RISCV_LO12_S"):
            where: tuple[str, int] | None = (reloc[1], reloc[2])
        else:
            b = self.base.get(mem.group(2))
            where = (b[0], b[1] + int(mem.group(1))) if b else None
        name = self.obj.locate(*where) if where else None
        return f"{name}[i]" if name and mem.group(2) in self.index else name

    def step(self, op: str, args: list[str], reloc: tuple[str, str, int] | None) -> None:
        """Apply one instruction (with its relocation, if any)."""
        rd = args[0] if args and op not in _NO_DEST else None
        srcs = args[1:] if rd else args
        mem = _MEM.match(args[-1]) if len(args) == 2 else None
        kind, sym, add = reloc if reloc else ("", "", 0)
        base = value = None
        if op == "lui" and kind == "R_RISCV_HI20":
            base = (sym, add)
        elif op in ("addi", "mv") and len(args) >= 2:
            b = self.base.get(args[1])
            base = ((sym, add) if kind == "R_RISCV_LO12_I" else
                    (b[0], b[1] + (int(args[2], 0) if op == "addi" else 0)) if b else None)
            value = self.loaded.get(args[1]) if op == "mv" else None
        elif op == "add" and len(args) == 3:
            base = self.base.get(args[1]) or self.base.get(args[2])
        elif op in ("lw", "lh", "lhu", "lb", "lbu") and mem:
            value = self._address(mem, reloc)
        elif op in ("sw", "sh", "sb") and mem:
            self.flow.stores.setdefault(self.func, set()).add(
                (self.loaded.get(args[0]), self._address(mem, reloc)))
        elif op == "csrw" and args[0] == self.csr:
            self.flow.csr.setdefault(self.func, []).append(self.loaded.get(args[1]))
        elif kind in ("R_RISCV_CALL_PLT", "R_RISCV_CALL"):
            self.flow.calls.setdefault(self.func, set()).add(sym)
        if rd is None:
            return
        for table, v in ((self.base, base), (self.loaded, value)):
            if v is None:
                table.pop(rd, None)
            else:
                table[rd] = v  # type: ignore[assignment]
        if not mem and any(r in self.index for r in srcs):
            self.index.add(rd)
        else:
            self.index.discard(rd)


def _flow(obj: _Object, csr: int) -> _Flow:
    flow = _Flow({}, {}, {})
    tracker: _Tracker | None = None
    pending: tuple[str, list[str]] | None = None
    reloc: tuple[str, str, int] | None = None
    for line in obj.listing.splitlines() + [""]:
        r = _RELOC.match(line)
        if r:
            if pending and r.group(2) != "R_RISCV_RELAX":
                reloc = (r.group(2), r.group(3), int(r.group(4) or "0", 16))
            continue
        m, i = _FUNC.match(line.strip()), _INSN.match(line)
        if pending and tracker and (m or i or not line.strip()):
            tracker.step(*pending, reloc)
            pending, reloc = None, None
        if m and not m.group(1).startswith(".L"):
            tracker = _Tracker(obj, csr, flow, m.group(1))
        elif i:
            pending = (i.group(2), [a.strip() for a in i.group(3).split(",") if a.strip()])
    return flow


def _ints(data: bytes, dtype: str) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(np.int64)


def check_points_target(points: PointNetwork, fw: Firmware, build_dir: str | os.PathLike[str],
                        target: Target | None = None) -> PointsTargetReport:
    """Cross-compile the points firmware ``fw`` (emitted with ``points``) and check its switch
    (see the module docstring).

    Raises:
        BuildError: no cross compiler, or a build failure.
    """
    t = target or default_target()
    cc = cross_compiler(t)
    if cc is None or not shutil.which(f"{t.cross_prefix}readelf"):
        raise BuildError(f"check_points_target: {t.cross_prefix}gcc/readelf are not installed "
                         f"(Debian: apt-get install gcc-riscv64-unknown-elf)")
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    flags = cross_flags(t)
    network = _read_object(cc, t.cross_prefix, flags, fw.directory / "network.c",
                           build / "network.o")
    calls = _flow(network, t.csr_address).calls.get(f"{fw.prefix}_set_operating_point", set())
    checks = []
    for layer in fw.layers[1:]:
        per_point = layer_points(points, layer.name)
        if per_point is None:
            continue
        fn = layer.fn
        obj = _read_object(cc, t.cross_prefix, flags, fw.directory / layer.source,
                           build / f"{Path(layer.source).stem}.o")
        flow = _flow(obj, t.csr_address)
        words = tuple(_word(p.multiplier) for p in per_point)
        found = tuple(int(v) for v in _ints(obj.data(f"{fn}_csr_pt"), "u4"))
        tables = {"bias": _table(obj, fn, "bias", [p.bias for p in per_point], "i4")}
        rqs = [p.requant for p in per_point if p.requant is not None]
        if rqs:
            tables["mult"] = _table(obj, fn, "mult", [rq.mult for rq in rqs], "i4")
            tables["shift"] = _table(obj, fn, "shift", [rq.shift for rq in rqs], "u1")
        switched = {src: dst for src, dst in flow.stores.get(f"{fn}_set_point", set())
                    if src and dst}
        checks.append(PointLayerCheck(
            layer=layer.name, function=fn, expected_words=words, found_words=found,
            tables=tables, switched=switched,
            csr_write=f"{fn}_csr" in flow.csr.get(fn, []),
            called=f"{fn}_set_point" in calls))
    version = _run([cc, "--version"], text=True).stdout.splitlines()[0]
    return PointsTargetReport(compiler=version, flags=flags, layers=tuple(checks))


def _word(spec: str) -> int:
    m = hwlib.get(spec)
    return hwlib.marlin.csr_word(m.level) if isinstance(m, hwlib.marlin.Marlin) else 0


def _table(obj: _Object, fn: str, what: str, values: list, dtype: str) -> bool:
    """``<fn>_<what>_pt`` points at ``<fn>_<what>_p<i>`` in order, each holding ``values[i]``."""
    arrays = [f"{fn}_{what}_p{i}" for i in range(len(values))]
    return (obj.pointers(f"{fn}_{what}_pt") == arrays
            and all(np.array_equal(_ints(obj.data(a), dtype), np.asarray(v, np.int64))
                    for a, v in zip(arrays, values)))
