"""Target checks with the rv32 cross compiler: CSR writes, the SIMD inner loop and the MARLIN
enables read back from the disassembly, and (with qemu-riscv32) the host-HAL build run as a
32-bit RISC-V program."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.emit_pulp import SHARED_FILES, Firmware
from deploy.errors import BuildError
from deploy.host import parse_outputs
from deploy.kernels import SimdReport, simd_report
from deploy.network import Network
from deploy.reference import run
from deploy.render import render_to
from deploy.target import Target, default_target

_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*([^#]*)")


@dataclass(frozen=True)
class CsrCheck:
    """The CSR 0x7D0 writes found in one layer's object file.

    Attributes:
        layer: IR node name.
        function: the C layer function.
        expected: the word it must write (None: it must write none).
        found: values written by ``csrw`` in that function, in order (None where the value was
            not a constant the check could follow).
        elsewhere: ``csrw 0x7D0`` count in other functions of the same object file.
    """

    layer: str
    function: str
    expected: int | None
    found: tuple[int | None, ...]
    elsewhere: int

    @property
    def ok(self) -> bool:
        """Exactly the expected write (or none), and no write outside the layer function."""
        want = () if self.expected is None else (self.expected,)
        return self.found == want and self.elsewhere == 0


@dataclass(frozen=True)
class TargetReport:
    """Outcome of :func:`check_target`.

    Attributes:
        compiler: cross compiler version line.
        flags: cross flags used.
        layers: one CsrCheck per approximable layer.
        simd: the kernels' SIMD inner loop and where their enables (``csrs``/``csrc 0x7D0``
            with the enable bits) sit.
        qemu_mismatches: elements differing from the reference in the qemu-riscv32 run of the
            host-HAL build (None when qemu-riscv32 is absent).
    """

    compiler: str
    flags: tuple[str, ...]
    layers: tuple[CsrCheck, ...]
    simd: SimdReport
    qemu_mismatches: int | None

    @property
    def enable_sets(self) -> int:
        """Enable sets found in the kernels."""
        return sum(s for s, _ in self.simd.enables.values())

    @property
    def enable_clears(self) -> int:
        """Enable clears found in the kernels."""
        return sum(c for _, c in self.simd.enables.values())

    @property
    def ok(self) -> bool:
        """Every layer writes its word once; conv and linear kernels each set and clear the
        enables once, outside every loop; no CSR access in a dot-product loop; qemu agrees."""
        return (all(c.ok for c in self.layers)
                and self.simd.enables == {"nn_conv": (1, 1), "nn_linear": (1, 1)}
                and self.simd.enables_in_loops == 0 and self.simd.csr_in_inner_loops == 0
                and self.simd.loop_dot_products > 0 and self.qemu_mismatches in (None, 0))


def cross_compiler(target: Target | None = None) -> str | None:
    """Path of the cross gcc, or None when it is not installed."""
    return shutil.which(f"{(target or default_target()).cross_prefix}gcc")


def cross_flags(target: Target | None = None) -> tuple[str, ...]:
    """Flags of the rv32 builds: ``-march``/``-mabi`` from the target facts, -O2 -Wall -Werror."""
    t = target or default_target()
    return (f"-march={t.march}", f"-mabi={t.mabi}", *t.cross_cflags, "-O2", "-Wall", "-Werror")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, **kw)
    if proc.returncode:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        raise BuildError(f"{' '.join(cmd[:6])} ... failed (exit {proc.returncode}):\n{err[-4000:]}")
    return proc


def csr_writes(disassembly: str, csr: int) -> dict[str, list[int | None]]:
    """Values written to ``csr`` by ``csrw`` per function of an ``objdump -d`` listing.

    Register values are followed through ``lui``/``addi``/``li``/``mv`` within the function.
    """
    out: dict[str, list[int | None]] = {}
    func = ""
    regs: dict[str, int | None] = {}
    name = f"0x{csr:x}"
    for line in disassembly.splitlines():
        m = _FUNC.match(line.strip())
        if m:
            if not m.group(1).startswith(".L"):
                func, regs = m.group(1), {}
                out.setdefault(func, [])
            continue
        m = _INSN.match(line)
        if not m or not func:
            continue
        op, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if op == "lui" and len(args) == 2:
            regs[args[0]] = (int(args[1], 0) << 12) & 0xFFFFFFFF
        elif op in ("addi", "add") and len(args) == 3 and re.fullmatch(r"-?\d+", args[2]):
            base = regs.get(args[1]) if args[1] != "zero" else 0
            regs[args[0]] = None if base is None else (base + int(args[2])) & 0xFFFFFFFF
        elif op == "li" and len(args) == 2:
            regs[args[0]] = int(args[1], 0) & 0xFFFFFFFF
        elif op == "mv" and len(args) == 2:
            regs[args[0]] = regs.get(args[1])
        elif op == "csrw" and len(args) == 2 and args[0] == name:
            out[func].append(0 if args[1] == "zero" else regs.get(args[1]))
        elif args and args[0] and op not in ("csrw", "csrs", "csrc", "csrsi", "csrci"):
            regs.pop(args[0], None)
    return out


def check_target(net: Network, fw: Firmware, build_dir: str | os.PathLike[str],
                 target: Target | None = None) -> TargetReport:
    """Cross-compile ``fw`` for rv32 in target mode and read every CSR write back.

    Also, when ``qemu-riscv32`` is installed, links the host-HAL build as a freestanding rv32
    program, runs it on the firmware's embedded reference input and compares every buffer with
    the NumPy reference.

    Raises:
        BuildError: no cross compiler, or a build failure.
    """
    t = target or default_target()
    cc = cross_compiler(t)
    if cc is None:
        raise BuildError(f"check_target: {t.cross_prefix}gcc is not installed (Debian: apt-get "
                         f"install gcc-riscv64-unknown-elf)")
    objdump = f"{t.cross_prefix}objdump"
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    flags = cross_flags(t)
    disasm: dict[str, str] = {}
    for src in [*fw.sources, "nn_kernels.c", "marlin_hal.c", "input_data.c"]:
        obj = build / f"{Path(src).stem}.o"
        _run([cc, *flags, "-DMARLIN_TARGET", "-c", str(fw.directory / src), "-o", str(obj)])
        disasm[src] = _run([objdump, "-d", "--no-show-raw-insn", str(obj)], text=True).stdout
    checks = []
    for layer in fw.layers[1:]:
        if layer.multiplier is None:
            continue
        writes = csr_writes(disasm[layer.source], t.csr_address)
        checks.append(CsrCheck(
            layer=layer.name, function=layer.fn, expected=layer.csr_word,
            found=tuple(writes.get(layer.fn, [])),
            elsewhere=sum(len(v) for k, v in writes.items() if k != layer.fn)))
    simd = simd_report(disasm["nn_kernels.c"], t.csr_address, t.csr_enable_bits)
    qemu = None
    if shutil.which("qemu-riscv32"):
        qemu = _qemu_mismatches(net, fw, build, cc, flags)
    version = _run([cc, "--version"], text=True).stdout.splitlines()[0]
    return TargetReport(compiler=version, flags=flags, layers=tuple(checks), simd=simd,
                        qemu_mismatches=qemu)


def _qemu_mismatches(net: Network, fw: Firmware, build: Path, cc: str,
                     flags: tuple[str, ...]) -> int:
    main = render_to(build / "rv32_main.c", "rv32_main.c.j2", net=net.name, prefix=fw.prefix)
    exe = build / "rv32_host_hal"
    sources = [str(fw.directory / s) for s in [*fw.sources, "input_data.c"]]
    shared = [str(fw.directory / s) for s in SHARED_FILES if s.endswith(".c")]
    _run([cc, *flags, "-nostdlib", "-static", "-Wl,--no-relax", "-Wl,--no-warn-rwx-segments",
          f"-I{fw.directory}", "-o", str(exe), str(main), *sources, *shared, "-lgcc"])
    out = _run(["qemu-riscv32", str(exe)], timeout=600).stdout
    got = parse_outputs(out, fw, 1)
    ref = run(net, fw.reference_input[None])
    return int(sum(np.count_nonzero(ref[k].astype(np.int64) != got[k].astype(np.int64))
                   for k in ref))
