"""``agn deploy``: network.json (+ assignment.json) -> firmware/ and validation.json (no torch)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import deploy
from deploy.rv32 import check_target, cross_compiler
from hwlib.fileio import atomic_path, atomic_write_json
from hwlib.scratch import scratch_dir

INPUTS_FILE = "validation_inputs.npy"
ENCODED_TEST = "integer_test.npz"  # agn.userrun.SPLIT_FILES["test"] (not imported: torch)
TARGET_FILE = "target_check.json"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``deploy`` subcommand."""
    p = subparsers.add_parser(
        "deploy", help="emit PULP firmware for an integer network and validate it bit for bit",
        description="Load NETWORK (a run directory holding network.json, or the file itself), "
        "optionally re-assign its multipliers from an assignment.json, emit the PMSIS "
        "application into RUN_DIR/firmware, compile and run it on the host against the NumPy "
        "reference (every layer, every input) and write RUN_DIR/validation.json. With the rv32 "
        "cross compiler installed, also check the CSR writes in the target build "
        f"(RUN_DIR/{TARGET_FILE}).")
    p.add_argument("network", type=Path, help="run directory with network.json, or its path")
    p.add_argument("--assignment", type=Path, default=None,
                   help="an assignment file (assignment.json, chosen_assignment.json) naming "
                   "every approximable layer")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where firmware/ and validation.json go (default: the network's "
                   "directory)")
    p.add_argument("--inputs", type=Path, default=None,
                   help=".npy of uint8 inputs (N, C, H, W); default: the first --n-inputs "
                   f"encoded test images of a directory agn.write_run wrote ({ENCODED_TEST}), "
                   "else --n-inputs random inputs in the input range the network declares")
    p.add_argument("--n-inputs", type=int, default=8,
                   help="inputs validated (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs "
                   "(default: %(default)s)")
    p.add_argument("--sanitize", action="store_true",
                   help="build the host program with -fsanitize=address,undefined")
    p.add_argument("--prefix", default="net", help="C prefix of the generated symbols "
                   "(default: %(default)s)")
    p.add_argument("--no-target-check", action="store_true",
                   help="skip the rv32 cross build even when the cross compiler is installed")
    p.set_defaults(func=run)


def _inputs(args: argparse.Namespace, net: deploy.Network) -> np.ndarray:
    if args.inputs is not None:
        return np.load(args.inputs, allow_pickle=False)
    if args.n_inputs < 1:
        raise ValueError(f"--n-inputs: expected at least 1, got {args.n_inputs}")
    encoded = args.network / ENCODED_TEST
    if args.network.is_dir() and encoded.exists():
        with np.load(encoded, allow_pickle=False) as f:
            return f["x"][:args.n_inputs]
    rng = np.random.default_rng(args.seed)  # codes the network's input declares (lo..hi)
    return rng.integers(net.input.lo, net.input.hi + 1, (args.n_inputs,) + net.input.shape,
                        dtype=np.uint8)


def run(args: argparse.Namespace) -> int:
    """Handler of ``agn deploy``."""
    try:
        if args.network.is_dir() and not (args.network / "network.json").exists():
            from agn.run import export_run  # torch only when a training run is exported

            path = export_run(args.network)
            print(f"agn deploy: exported the trained model of {args.network} to {path}",
                  file=sys.stderr)
        net = deploy.load(args.network)
        if args.assignment is not None:
            net = deploy.with_multipliers(net, deploy.read_assignment(args.assignment))
        run_dir = args.run_dir or (args.network if args.network.is_dir()
                                   else args.network.parent)
        x = _inputs(args, net)
        print(f"agn deploy: {net.name}: {len(net.layers)} approximable layers, {len(x)} inputs; "
              f"emitting and validating on the host", file=sys.stderr)
        report = deploy.validate(net, x, run_dir, sanitize=args.sanitize, prefix=args.prefix)
        with atomic_path(run_dir / INPUTS_FILE) as tmp:
            np.save(tmp, x)
        target = None
        if not args.no_target_check and cross_compiler() is not None:
            print("agn deploy: checking the rv32 target build", file=sys.stderr)
            with scratch_dir("agn-rv32-") as build:
                target = check_target(net, report.firmware, build)
            atomic_write_json(run_dir / TARGET_FILE, {
                "ok": target.ok, "compiler": target.compiler, "flags": list(target.flags),
                "enable_sets": target.enable_sets, "enable_clears": target.enable_clears,
                "simd_inner_loop": {
                    "function": target.simd.function,
                    "instructions": target.simd.loop_instructions,
                    "dot_products": target.simd.loop_dot_products, "macs": target.simd.macs,
                    "instructions_per_mac": target.simd.per_mac,
                    "pulp_nn_instructions_per_mac": target.simd.pulp_nn_per_mac,
                    "enables_in_loops": target.simd.enables_in_loops},
                "qemu_mismatches": target.qemu_mismatches,
                "layers": [{"name": c.layer, "function": c.function,
                            "expected": None if c.expected is None else f"0x{c.expected:08X}",
                            "found": [None if v is None else f"0x{v:08X}" for v in c.found],
                            "ok": c.ok} for c in target.layers]})
    except (ValueError, TypeError, FileNotFoundError, deploy.BuildError) as exc:
        print(f"agn deploy: error: {exc}", file=sys.stderr)
        return 2
    fw, l2 = report.firmware, deploy.default_target().l2_bytes
    tiles = {t.name: t for t in fw.tiling.layers}
    for layer in report.layers:
        word = f"  csrw 0x{layer.csr_word:08X}" if layer.csr_word is not None else ""
        t = tiles.get(layer.name)
        l1 = (f"  L1 {t.l1_bytes} B x {t.n_tiles} tiles" if t is not None and t.tiled
              else "  L2 only" if t is not None else "")
        print(f"{layer.name:<24} {layer.op:<15} {layer.multiplier or '':<14} mismatches "
              f"{layer.mismatches}{l1}{word}")
    used = fw.activation_bytes + fw.parameter_bytes
    print(f"firmware data: {fw.activation_bytes} B activation arena + {fw.parameter_bytes} B "
          f"parameters = {used} B of {l2} B L2" + ("  (DOES NOT FIT L2)" if used > l2 else ""))
    print(fw.plan.summary())
    print(fw.tiling.summary())
    cost = deploy.cost.totals(report.cost)
    energy = cost["mult_energy_uj"]
    print(f"cost estimate: {cost['macs']} MACs, {cost['cycles']} cycles (DMA overlapped by "
          f"double buffering), {cost['dma_bytes']} B DMA, {cost['l3_bytes']} B from L3, "
          f"{cost['csr_writes']} CSR writes"
          + (f", multiplications {energy:.3f} uJ" if energy is not None else ""))
    sums = report.checksum_mismatches
    print(f"firmware checksums: {len(report.layers)} nodes per input agree with the reference"
          if not sums else f"firmware checksums DIFFER from the reference from node {sums[0]!r} "
                           f"({len(sums)} nodes)")
    print(f"wrote {run_dir / 'firmware'} and {run_dir / 'validation.json'}: "
          f"{'bit-exact' if report.ok else f'{report.mismatches} MISMATCHES'}")
    if target is not None:
        print(f"rv32 {target.simd.summary()}")
        print(f"rv32 target check: {'ok' if target.ok else 'FAILED'} ({run_dir / TARGET_FILE})")
    return 0 if report.ok and (target is None or target.ok) else 1
