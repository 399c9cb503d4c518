"""Instructions per MAC of the firmware's SIMD inner loop, from the rv32 disassembly, vs PULP-NN.

Emits a network's firmware (``--network``, a deploy.zoo builder), cross-compiles its
``nn_kernels.c`` for the target (``-DMARLIN_TARGET``, the flags of ``deploy.rv32``), disassembles
it with objdump and counts, in the innermost loop holding the most ``pv.sdotusp.b`` words, every
instruction of one iteration (loads, dot products, pointer increments, the closing branch)
against the MACs it does (4 per dot product). PULP-NN's 2x4 loop (``pulp_nn_matmul``) is 6
post-increment word loads and 8 ``pv.sdotusp.b`` per 32 MACs in a zero-overhead hardware loop:
14/32 instructions per MAC. Prints the loop itself with ``--listing``. The count is static (one
iteration of the listing), so it does not depend on machine load.

    python bench/simd_loop.py [--network resnet20] [--listing]
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from deploy import zoo
from deploy.emit_pulp import emit
from deploy.kernels import functions, loops, simd_report
from deploy.rv32 import cross_compiler, cross_flags
from deploy.target import default_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="resnet20", help="deploy.zoo builder name")
    ap.add_argument("--listing", action="store_true", help="print the inner loop")
    args = ap.parse_args()
    cc, t = cross_compiler(), default_target()
    if cc is None:
        raise SystemExit(f"{t.cross_prefix}gcc is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        fw = emit(getattr(zoo, args.network)(0), Path(tmp) / "fw")
        obj = Path(tmp) / "nn_kernels.o"
        subprocess.run([cc, *cross_flags(t), "-DMARLIN_TARGET", "-c",
                        str(fw.directory / "nn_kernels.c"), "-o", str(obj)], check=True)
        listing = subprocess.run([f"{t.cross_prefix}objdump", "-d", "--no-show-raw-insn",
                                  str(obj)], check=True, capture_output=True, text=True).stdout
    report = simd_report(listing, t.csr_address, t.csr_enable_bits)
    print(f"{args.network}: {' '.join(cross_flags(t))}")
    print(report.summary())
    print(f"MARLIN enables (csrs, csrc) per function: {report.enables}; inside loops: "
          f"{report.enables_in_loops}")
    if args.listing:
        insns = functions(listing)[report.function]
        inner = [l for l in loops(report.function, insns)
                 if l.dot_products == report.loop_dot_products
                 and len(l.body) == report.loop_instructions]
        for insn in inner[0].body:
            print(f"  {insn.address:5x}: {insn.op:<8} {insn.args}"
                  + ("   # pv.sdotusp.b" if insn.is_sdotusp_b else ""))


if __name__ == "__main__":
    main()
