"""Time of agn.sim.approx_conv2d / exact float32 conv2d on the same shapes, measured in one run.

Shapes: the conv layers of a CIFAR ResNet-20 (batch 128 by default) and of the MNIST network in
docs/marlin.md. Multipliers: MARLIN levels 0, 1, 15, 127, 128, 255, the 13 signed EvoApprox
aliases and random tables of rank 1, 4, 16 and full rank. Each ratio is the median over
interleaved repeats (a block of approximate calls, then a block of exact calls, ...), so other
load on the machine cancels out as far as it can; one torch thread by default for the same reason.

    python bench/engine_paths.py [--batch 128] [--repeats 7] [--input uint8|float] [--threads 1]
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


def multipliers() -> list[tuple[str, hwlib.Multiplier]]:
    """(group, multiplier) pairs benchmarked."""
    out = [("marlin", hwlib.get(f"marlin:{lv}")) for lv in (0, 1, 15, 127, 128, 255)]
    out += [("evo", m) for m in hwlib.catalog("evo:mul8s_*")]
    out += [(f"rank{r or 'full'}", random_table(r, i)) for i, r in enumerate((1, 4, 16, None))]
    return out


def ratio(m: hwlib.Multiplier, shape: tuple, batch: int, repeats: int, as_float: bool,
          gen: torch.Generator) -> tuple[float, sim.Plan]:
    """Median of approx / exact times over interleaved repeats for one layer, and its plan."""
    _, c, cout, hw, k, stride, pad = shape
    xd = m.network_x_domain()
    x = torch.randint(xd.lo, xd.hi + 1, (batch, c, hw, hw), generator=gen, dtype=torch.int64)
    w = torch.randint(-128, 128, (cout, c, k, k), generator=gen, dtype=torch.int64)
    xs = x.float() if as_float else x.to(torch.uint8)
    ws = w.to(torch.int8)
    xf, wf = x.float(), w.float()

    def approx():
        sim.approx_conv2d(xs, ws, m, stride=stride, padding=pad)

    def exact():
        F.conv2d(xf, wf, stride=stride, padding=pad)

    approx(), exact()  # warm up: plans, weight packing, oneDNN primitives
    t0 = time.perf_counter()
    exact()
    block = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))  # ~20 ms per timed block
    ratios = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(block):
            approx()
        t1 = time.perf_counter()
        for _ in range(block):
            exact()
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ratios), sim.describe(m, ws)


def main(argv: list[str] | None = None) -> int:
    """Print one ratio per (multiplier, shape) and the medians per group and path."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128, help="ResNet-20 batch (MNIST uses 4x)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    ap.add_argument("--input", choices=("uint8", "float"), default="uint8",
                    help="activation tensor handed to the engine (float = fake-quant integers)")
    ap.add_argument("--only", default="", help="comma list of groups (marlin,evo,rank1,...)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    groups: dict[str, list[float]] = defaultdict(list)
    paths: dict[str, list[float]] = defaultdict(list)
    only = set(filter(None, args.only.split(",")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.input}, "
          f"oneDNN self-test: {sim.selftest().detail}")
    print(f"{'multiplier':<22}{'layer':<14}{'plan':<34}{'approx/exact':>12}")
    for group, m in multipliers():
        if only and group not in only:
            continue
        for shape in RESNET20 + MNIST:
            batch = args.batch if shape[0].startswith("r20") else 4 * args.batch
            r, p = ratio(m, shape, batch, args.repeats, args.input == "float", gen)
            groups[group].append(r)
            paths[f"{p.path}/{p.kernel}"].append(r)
            print(f"{m.spec:<22}{shape[0]:<14}{str(p):<34}{r:>12.2f}", flush=True)
    print("\nmedian approx/exact per multiplier group")
    for g, rs in groups.items():
        print(f"  {g:<12}{statistics.median(rs):>8.2f}   (n={len(rs)})")
    print("median approx/exact per path")
    for pth, rs in sorted(paths.items()):
        print(f"  {pth:<30}{statistics.median(rs):>8.2f}   (n={len(rs)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
