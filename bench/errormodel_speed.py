"""Error-model predictions for all 256 MARLIN levels x every layer of a ResNet-20, timed.

Synthetic operand statistics of the 22 approximable layers of a CIFAR ResNet-20 (stem 3->16,
nine basic blocks of 16, 32, 64 channels with two 1x1 projection shortcuts, FC 64->10): random
int8 weight histograms (per output channel, as ``agn.stats`` records them, and the weights and
fields themselves for ``--method sample``) and ``--fields``
sampled activation histograms per layer. Times ``errormodels.predict`` (the ``channel``
formula, the default) over the 256-level MARLIN catalog, median of ``--repeats`` runs in this
process, the catalog's error tables built once beforehand (a run builds them once too).

    python bench/errormodel_speed.py [--fields 64] [--repeats 7] [--method channel]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import errormodels as em
from errormodels.stats import OperandStats

#: (name, Cout, Cin, k, output pixels) of the ResNet-20 layers at 32x32 input.
RESNET20 = [("stem", 16, 3, 3, 1024)] + [
    (f"s{s}.b{b}.c{c}", co, ci if (b, c) == (0, 1) else co, 3, px)
    for s, (co, ci, px) in enumerate(((16, 16, 1024), (32, 16, 256), (64, 32, 64)), start=1)
    for b in range(3) for c in (1, 2)] + [
    ("s2.sc", 32, 16, 1, 256), ("s3.sc", 64, 32, 1, 64), ("fc", 10, 64, 1, 1)]


def synthetic_stats(fields: int, seed: int = 0) -> list[OperandStats]:
    """Operand statistics of the ResNet-20 layers with random weights and activations."""
    rng = np.random.default_rng(seed)
    out = []
    for name, co, ci, k, px in RESNET20:
        fan_in = ci * k * k
        w = np.clip(np.rint(rng.normal(0, 30, (co, fan_in))), -128, 127).astype(np.int64) + 128
        channel = np.stack([np.bincount(r, minlength=256) for r in w])
        x = np.clip(np.rint(rng.exponential(40, (fields, fan_in))), 0, 255).astype(np.int64)
        field = np.stack([np.bincount(r, minlength=256) for r in x])
        out.append(OperandStats(name=name, weight_hist=channel.sum(0), field_hists=field,
                                fan_in=fan_in, multiplications=co * px * fan_in,
                                out_std=float(np.sqrt(fan_in) * 40 * 30), out_mean=0.0, seed=seed,
                                channel_hists=channel,
                                operands=em.SampledOperands(x, w - 128)))
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the median prediction time; 0 when it is under one second."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=64, help="activation fields per layer")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--method", default="channel",
                    help="channel, sample, fixed_field, population, iid")
    ap.add_argument("--channels-per-field", type=int, default=None,
                    help="sample only: channels each field meets (default: all)")
    args = ap.parse_args(argv)
    stats = synthetic_stats(args.fields)
    t0 = time.perf_counter()
    catalog = em.ErrorCatalog.build("marlin:*")
    t_catalog = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        pred = em.predict(stats, catalog, args.method, channels_per_field=args.channels_per_field)
        times.append(time.perf_counter() - t0)
    shape = np.asarray(pred.std).shape
    med = statistics.median(times)
    label = args.method + ("" if args.channels_per_field is None
                           else f", {args.channels_per_field} channel(s) per field")
    print(f"error-model predictions ({label}) for {len(catalog.catalog.members)} MARLIN "
          f"levels x {len(stats)} ResNet-20 layers ({shape} std array), {args.fields} fields "
          f"per layer: median {med:.3f} s over {args.repeats} runs (min {min(times):.3f} s); "
          f"catalog error tables built once in {t_catalog:.2f} s")
    return 0 if med < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
