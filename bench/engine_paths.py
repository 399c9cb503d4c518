"""Time of agn.sim.approx_conv2d / exact float32 conv2d on the same shapes, measured in one run.

Shapes: the conv layers of a CIFAR ResNet-20 (batch 128 by default) and of the MNIST network in
docs/marlin.md. Multipliers: MARLIN levels 0, 1, 15, 127, 128, 255 (``--levels``), the 13 signed
EvoApprox aliases and random tables of rank 1, 4, 16 and full rank. Two ratios per layer: against
an exact float32 conv of NCHW tensors and against one of channels-last tensors. Each is the median
over interleaved repeats (a block of approximate calls, a block of NCHW exact calls, a block of
channels-last exact calls, ...), so other load on the machine cancels out as far as it can; one
torch thread by default for the same reason.

    python bench/engine_paths.py [--batch 128] [--repeats 7] [--input uint8|float] [--threads 1]
        [--only marlin,evo,...] [--levels 0,15,127,255] [--shapes r20|mnist|all]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

import hwlib
from agn import sim
from agn.sim import ckernel

# (name, C, Cout, H=W, k, stride, padding)
RESNET20 = [("r20.conv1", 3, 16, 32, 3, 1, 1), ("r20.s1", 16, 16, 32, 3, 1, 1),
            ("r20.s2.down", 16, 32, 32, 3, 2, 1), ("r20.s2", 32, 32, 16, 3, 1, 1),
            ("r20.s3.down", 32, 64, 16, 3, 2, 1), ("r20.s3", 64, 64, 8, 3, 1, 1)]
MNIST = [("mnist.c1", 1, 3, 28, 7, 1, 3), ("mnist.c2", 3, 8, 28, 5, 1, 2),
         ("mnist.c3", 8, 10, 14, 3, 1, 1), ("mnist.c4", 10, 16, 14, 3, 1, 1),
         ("mnist.c5", 16, 24, 7, 3, 1, 1)]


def random_table(rank: int | None, seed: int) -> hwlib.Multiplier:
    """Exact product plus a random integer error table of the given rank (None: full rank)."""
    rng = np.random.default_rng(seed)
    if rank is None:
        err = rng.integers(-300, 301, (256, 256))
    else:
        err = rng.integers(-3, 4, (rank, 256)).T @ rng.integers(-3, 4, (rank, 256))
    exact = hwlib.UINT8.values()[:, None] * hwlib.INT8.values()[None, :]
    return hwlib.TableMultiplier(f"random:rank{rank or 'full'}", exact + err, hwlib.UINT8,
                                 hwlib.INT8, hwlib.Power(None, 1.0, "benchmark table"))


def multipliers(levels: tuple[int, ...] = (0, 1, 15, 127, 128, 255)
                ) -> list[tuple[str, hwlib.Multiplier]]:
    """(group, multiplier) pairs benchmarked."""
    out = [("marlin", hwlib.get(f"marlin:{lv}")) for lv in levels]
    out += [("evo", m) for m in hwlib.catalog("evo:mul8s_*")]
    out += [(f"rank{r or 'full'}", random_table(r, i)) for i, r in enumerate((1, 4, 16, None))]
    return out


def ratio(m: hwlib.Multiplier, shape: tuple, batch: int, repeats: int, as_float: bool,
          gen: torch.Generator) -> tuple[float, float, sim.Plan]:
    """Medians of approx / exact NCHW and approx / exact channels-last times, and the plan."""
    _, c, cout, hw, k, stride, pad = shape
    xd = m.network_x_domain()
    x = torch.randint(xd.lo, xd.hi + 1, (batch, c, hw, hw), generator=gen, dtype=torch.int64)
    w = torch.randint(-128, 128, (cout, c, k, k), generator=gen, dtype=torch.int64)
    xs = x.float() if as_float else x.to(torch.uint8)
    ws = w.to(torch.int8)
    xf, wf = x.float(), w.float()
    xc = xf.contiguous(memory_format=torch.channels_last)
    wc = wf.contiguous(memory_format=torch.channels_last)

    def approx():
        sim.approx_conv2d(xs, ws, m, stride=stride, padding=pad)

    def exact():
        F.conv2d(xf, wf, stride=stride, padding=pad)

    def exact_cl():
        F.conv2d(xc, wc, stride=stride, padding=pad)

    approx(), exact(), exact_cl()  # warm up: plans, weight packing, oneDNN primitives
    t0 = time.perf_counter()
    exact()
    block = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))  # ~20 ms per timed block
    nchw, cl = [], []
    for _ in range(repeats):
        times = []
        for fn in (approx, exact, exact_cl):
            t0 = time.perf_counter()
            for _ in range(block):
                fn()
            times.append(time.perf_counter() - t0)
        nchw.append(times[0] / times[1])
        cl.append(times[0] / times[2])
    return statistics.median(nchw), statistics.median(cl), sim.describe(m, ws)


def main(argv: list[str] | None = None) -> int:
    """Print one ratio per (multiplier, shape) and the medians per group and path."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128, help="ResNet-20 batch (MNIST uses 4x)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    ap.add_argument("--input", choices=("uint8", "float"), default="uint8",
                    help="activation tensor handed to the engine (float = fake-quant integers)")
    ap.add_argument("--only", default="", help="comma list of groups (marlin,evo,rank1,...)")
    ap.add_argument("--levels", default="0,1,15,127,128,255", help="MARLIN levels")
    ap.add_argument("--shapes", choices=("r20", "mnist", "all"), default="all")
    args = ap.parse_args(argv)
    levels = tuple(int(v) for v in args.levels.split(","))
    shapes = {"r20": RESNET20, "mnist": MNIST, "all": RESNET20 + MNIST}[args.shapes]
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    paths: dict[str, list[tuple[float, float]]] = defaultdict(list)
    only = set(filter(None, args.only.split(",")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.input}, "
          f"oneDNN self-test: {sim.selftest().detail}")
    print(f"feature kernel: {'compiled' if ckernel.available() else 'torch'} "
          f"({ckernel.status()})")
    print(f"{'multiplier':<22}{'layer':<14}{'plan':<34}{'/NCHW':>8}{'/ch-last':>10}")
    for group, m in multipliers(levels):
        if only and group not in only:
            continue
        for shape in shapes:
            batch = args.batch if shape[0].startswith("r20") else 4 * args.batch
            r, rc, p = ratio(m, shape, batch, args.repeats, args.input == "float", gen)
            groups[group].append((r, rc))
            paths[f"{p.path}/{p.kernel}"].append((r, rc))
            print(f"{m.spec:<22}{shape[0]:<14}{p!s:<34}{r:>8.2f}{rc:>10.2f}", flush=True)
    print("\nmedian approx/exact per multiplier group (NCHW, channels-last)")
    for g, rs in groups.items():
        print(f"  {g:<12}{_median(rs)}   (n={len(rs)})")
    print("median approx/exact per path (NCHW, channels-last)")
    for pth, rs in sorted(paths.items()):
        print(f"  {pth:<30}{_median(rs)}   (n={len(rs)})")
    return 0


def _median(pairs: list[tuple[float, float]]) -> str:
    return "".join(f"{statistics.median(r[i] for r in pairs):>8.2f}" for i in range(2))


if __name__ == "__main__":
    raise SystemExit(main())
