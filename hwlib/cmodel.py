"""Compile an EvoApprox-style C model with the system C compiler and tabulate all 65,536 pairs."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np

from hwlib.errors import TableError
from hwlib.scratch import scratch_dir

_INT = r"(?:const\s+)?(u?int(?:8|16|32|64)_t)\s+(?:const\s+)?"
FUNCTION_RE = re.compile(
    r"\b(u?int(?:8|16|32|64)_t)\s+([A-Za-z_]\w*)\s*\(\s*" + _INT + r"\w+\s*,\s*" + _INT
    + r"\w+\s*\)\s*\{")
POWER_RE = re.compile(r"PDK45_PWR\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*mW")
TIMEOUT_S = 120

_WRAPPER = r"""
#include <stdint.h>
#include <stdio.h>
%(source)s
int main(void) {
    static long long out[65536];
    for (int a = 0; a < 256; ++a)
        for (int b = 0; b < 256; ++b)
            out[a * 256 + b] = (long long)%(func)s((%(argt)s)(%(opt)s)a, (%(argt)s)(%(opt)s)b);
    return fwrite(out, sizeof out[0], 65536, stdout) == 65536 ? 0 : 1;
}
"""


class CModelError(TableError):
    """A C model that has no usable function, does not compile or does not run."""


@dataclass(frozen=True)
class CFunction:
    """The multiplier function found in a C file.

    Attributes:
        name: function name, e.g. ``mul8u_1JJQ``.
        signed: True for a signed circuit (``int8_t`` operands; ``mul8s_`` names with wider
            operand types), False for an unsigned one.
        return_type: declared return type, e.g. ``uint16_t``.
        arg_type: declared operand type, e.g. ``uint8_t``.
    """

    name: str
    signed: bool
    return_type: str
    arg_type: str = "uint8_t"


def _declared_signed(name: str, arg_type: str) -> bool:
    if arg_type in ("int8_t", "uint8_t"):
        return arg_type == "int8_t"
    return name.startswith("mul8s") or not (name.startswith("mul8u") or arg_type[0] == "u")


def find_function(source: str, path: str, name: str | None = None) -> CFunction:
    """The ``T f(T8 A, T8 B)`` function of ``source`` (``name`` picks one of several).

    Operand types may be any ``u?intN_t`` (EvoApprox uses ``uint8_t``/``int8_t``; some generators
    emit ``const uint64_t``); both operands must have the same type.
    """
    found = [CFunction(m[2], _declared_signed(m[2], m[3]), m[1], m[3])
             for m in FUNCTION_RE.finditer(source) if m[3] == m[4]]
    if name is not None:
        found = [f for f in found if f.name == name]
    elif len(found) > 1:
        found = [f for f in found if f.name.startswith(("mul8u_", "mul8s_"))] or found
    if len(found) != 1:
        what = "no function" if not found else f"{len(found)} functions ({[f.name for f in found]})"
        want = f"named {name!r} " if name else ""
        raise CModelError(
            f"C model {path}: found {what} {want}of the form 'uint16_t mul8u_X(uint8_t A, "
            f"uint8_t B)' or 'int16_t mul8s_X(int8_t A, int8_t B)'; pick one with '?func=NAME'")
    return found[0]


def header_power_mw(source: str) -> float | None:
    """The ``PDK45_PWR = <x> mW`` figure of an EvoApprox header comment, if present."""
    m = POWER_RE.search(source)
    return float(m[1]) if m else None


def compiler() -> str:
    """The system C compiler ($CC, else cc/gcc/clang on PATH)."""
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return cand
    raise CModelError("C model: no C compiler found (set $CC or install cc/gcc/clang)")


def evaluate(source: str, func: CFunction, path: str) -> np.ndarray:
    """Compile ``source`` with a driver and return ``func(a, b)`` for all operand bit patterns.

    Returns:
        int64 (256, 256): row = bit pattern of the first operand (0..255), column = the second's,
        values as the function returns them (converted to its declared return type).
    """
    opt = "int8_t" if func.signed else "uint8_t"
    with scratch_dir("hwlib-cmodel-") as tmp:
        src, exe = tmp / "driver.c", tmp / "driver"
        src.write_text(_WRAPPER % {"source": f'#line 1 "{path}"\n{source}',
                                   "func": func.name, "argt": func.arg_type, "opt": opt})
        cc = compiler()
        built = _run([cc, "-std=gnu99", "-O1", "-w", "-o", str(exe), str(src)], path,
                     f"compiling it with {cc}")
        if built.returncode != 0:
            raise CModelError(f"C model {path}: does not compile with {cc}:\n"
                              f"{built.stderr.decode(errors='replace').strip()[:2000]}")
        ran = _run([str(exe)], path, "evaluating its 65,536 operand pairs")
    if ran.returncode != 0 or len(ran.stdout) != 65536 * 8:
        raise CModelError(f"C model {path}: the compiled driver failed (exit {ran.returncode}, "
                          f"{len(ran.stdout)} of {65536 * 8} bytes)")
    return np.frombuffer(ran.stdout, dtype="<i8").reshape(256, 256).astype(np.int64)


def _run(cmd: list[str], path: str, what: str) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run`` with the module's time limit; a timeout is one clear CModelError."""
    try:
        return subprocess.run(cmd, check=False, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CModelError(f"C model {path}: {what} did not finish within {TIMEOUT_S} s (does the "
                          f"function loop forever?)") from None
