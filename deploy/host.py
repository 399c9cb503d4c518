"""Host builds of generated firmware: compile with the system gcc, run on inputs, read every buffer.

Several networks compile into one program (their symbols carry distinct prefixes): the layer
files are grouped into a few unity translation units compiled in parallel, which keeps the
many-network tests fast.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.emit_pulp import Firmware
from deploy.errors import BuildError
from deploy.render import render_to

WARNINGS = ("-O2", "-Wall", "-Werror", "-std=c11")
SANITIZERS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
              "-fno-omit-frame-pointer")


def host_flags(sanitize: bool = False) -> tuple[str, ...]:
    """gcc flags of host builds (with ASan/UBSan when ``sanitize``)."""
    return WARNINGS + (SANITIZERS if sanitize else ())


def compiler_version(cc: str = "gcc") -> str:
    """First line of ``cc --version``."""
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def _cc(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise BuildError(f"host build failed ({' '.join(cmd[:8])} ...):\n{proc.stderr[-4000:]}")


def build_host(firmwares: Sequence[Firmware], build_dir: str | os.PathLike[str],
               sanitize: bool = False, jobs: int = 2, cc: str = "gcc",
               driver: str = "main.c.j2") -> Path:
    """Compile one host program running every firmware in ``firmwares``; return its path.

    Args:
        firmwares: emitted applications with distinct prefixes.
        build_dir: where the driver, unity files, objects and the program go.
        sanitize: add ``-fsanitize=address,undefined``.
        jobs: parallel compiler processes (and unity translation units).
        cc: the host C compiler.
        driver: the template of the program's ``main.c`` (``points_main.c.j2`` switches
            operating points between runs, see :mod:`deploy.points`).
    """
    prefixes = [f.prefix for f in firmwares]
    if not firmwares or len(set(prefixes)) != len(prefixes):
        raise BuildError(f"build_host: expected firmwares with distinct prefixes, got {prefixes}")
    build = Path(build_dir)
    build.mkdir(parents=True, exist_ok=True)
    flags = list(host_flags(sanitize))
    n_units = max(1, min(4 * jobs, len(firmwares)))
    units = []
    for u in range(n_units):
        lines = [f'#include "{(fw.directory / src).resolve()}"'
                 for fw in firmwares[u::n_units] for src in fw.sources]
        if u == 0:
            lines += [f'#include "{(firmwares[0].directory / name).resolve()}"'
                      for name in ("marlin_hal.c", "nn_kernels.c")]
        path = build / f"unity_{u}.c"
        path.write_text("\n".join(lines) + "\n")
        units.append(path)
    main = render_to(build / "main.c", driver, networks=[
        {"prefix": fw.prefix, "header": str((fw.directory / "network.h").resolve())}
        for fw in firmwares])
    include = f"-I{firmwares[0].directory.resolve()}"
    cmds = [[cc, *flags, include, "-c", str(p), "-o", str(p.with_suffix(".o"))]
            for p in [*units, main]]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(_cc, cmds))
    exe = build / "host_program"
    _cc([cc, *flags, "-o", str(exe), *(str(p.with_suffix(".o")) for p in [*units, main])])
    return exe


def _to_hwc_bytes(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(np.asarray(x, np.uint8).transpose(0, 2, 3, 1)).tobytes()


def parse_outputs(data: bytes, fw: Firmware, n: int) -> dict[str, np.ndarray]:
    """Every node's output for ``n`` inputs from a program's dump (HWC buffers, in layer order)."""
    per_sample = [(l.name, l.shape, np.dtype("<i4") if l.dtype == "int32" else np.dtype("u1"))
                  for l in fw.layers]
    stride = sum(int(np.prod(s)) * d.itemsize for _, s, d in per_sample)
    if len(data) != n * stride:
        raise BuildError(f"host run of {fw.network!r}: expected {n * stride} output bytes for "
                         f"{n} inputs, got {len(data)}")
    out: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in per_sample}
    pos = 0
    for _ in range(n):
        for name, shape, dt in per_sample:
            size = int(np.prod(shape))
            a = np.frombuffer(data, dt, size, pos)
            pos += size * dt.itemsize
            hwc = a.reshape(shape[1:] + shape[:1]) if len(shape) == 3 else a
            out[name].append(hwc.transpose(2, 0, 1) if len(shape) == 3 else hwc)
    return {k: np.stack(v).astype(np.int32 if v[0].dtype.kind == "i" else np.uint8)
            for k, v in out.items()}


@dataclass(frozen=True)
class HostRun:
    """One firmware's outputs from a host run.

    Attributes:
        outputs: ``{node name: array}`` in the reference's layout (NCHW or (N, F)).
        checksums: (inputs, nodes) uint32, the checksum the firmware's hook took of every node
            right after it ran (the same code the target build prints).
    """

    outputs: dict[str, np.ndarray]
    checksums: np.ndarray


def parse_checksums(stdout: str, firmwares: Sequence[Firmware], counts: Sequence[int]
                    ) -> list[np.ndarray]:
    """Per firmware, the (inputs, nodes) checksums printed by a host program."""
    sums = [np.full((n, len(fw.layers)), -1, np.int64) for fw, n in zip(firmwares, counts)]
    for line in stdout.splitlines():
        tag, *fields = line.split()
        if tag != "checksum" or len(fields) != 4:
            raise BuildError(f"host run: expected 'checksum <network> <input> <node> <sum>' "
                             f"lines on stdout, got {line!r}")
        net, sample, node, value = (int(v) for v in fields)
        sums[net][sample, node] = value
    for fw, s in zip(firmwares, sums):
        if (s < 0).any():
            raise BuildError(f"host run of {fw.network!r}: {int((s < 0).sum())} node checksum(s) "
                             f"missing from the program's output")
    return [s.astype(np.uint32) for s in sums]


def run_host_checked(exe: str | os.PathLike[str], firmwares: Sequence[Firmware],
                     inputs: Sequence[np.ndarray], work_dir: str | os.PathLike[str],
                     timeout: float = 600.0) -> list[HostRun]:
    """Run a program from :func:`build_host`: every node's output and firmware checksum per
    firmware (arguments as :func:`run_host`)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    args = []
    for i, (_fw, x) in enumerate(zip(firmwares, inputs, strict=True)):
        (work / f"in_{i}.bin").write_bytes(_to_hwc_bytes(x))
        args += [str(work / f"in_{i}.bin"), str(work / f"out_{i}.bin")]
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"}
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    if proc.returncode or proc.stderr.strip():
        raise BuildError(f"host run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    sums = parse_checksums(proc.stdout, firmwares, [len(x) for x in inputs])
    return [HostRun(parse_outputs((work / f"out_{i}.bin").read_bytes(), fw, len(x)), s)
            for i, (fw, x, s) in enumerate(zip(firmwares, inputs, sums))]


def run_host(exe: str | os.PathLike[str], firmwares: Sequence[Firmware],
             inputs: Sequence[np.ndarray], work_dir: str | os.PathLike[str],
             timeout: float = 600.0) -> list[dict[str, np.ndarray]]:
    """Run a program from :func:`build_host` and return every node's output per firmware.

    Args:
        exe: the program.
        firmwares: the firmwares it was built from, in the same order.
        inputs: per firmware, uint8 inputs (N, C, H, W).
        work_dir: where the input and output files go.
        timeout: seconds before the run is killed.

    Returns:
        Per firmware, ``{node name: array}`` in the reference's layout (NCHW or (N, F)).
    """
    return [r.outputs for r in run_host_checked(exe, firmwares, inputs, work_dir, timeout)]
