"""Error-model validation: predicted against bit-exact measured layer output error, and timing.

For every approximable layer of a trained LeNet-5 (8x8 digits) and of the MARLIN MNIST network
(MNIST), and MARLIN levels 1, 15, 63, 127, 128, 255 plus the signed EvoApprox aliases, the layer's
real integer operands go through the bit-exact engine (agn.sim) and the measured output error std
is compared with the four predictions (fixed-field, channel, population, i.i.d.) from operand
statistics collected on the same seeded sample of training images. The "done when" figure is the
median |predicted/measured - 1| of the default formula (channel), which should be at most 10 %.

Models are trained here through agn.training (float -> QAT -> noise, the shipped configs
digits_lenet5 and a shortened marlin_mnist) in --work-dir, or reused from there when already
trained. Prints ratios measured in this run; writes
``<work-dir>/<model>/errormodel_validation.csv`` (read by notebooks/layer_robustness.py).

    python bench/errormodel_validation.py [--work-dir runs/errormodel_validation] [--quick]
        [--data-dir DATA]   # DATA/mnist holds the MNIST IDX files (default: $AGN_DATA_DIR)
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from benchdata import add_data_dir, dataset_dir
from threadpoolctl import threadpool_limits

import hwlib
from agn.cli.train import build_config
from agn.data import build_datamodule
from agn.layers import approx_layers, approximate_, set_mode
from agn.stats import collect_stats, measure_errors, sample_batches
from agn.training import TrainConfig, load_stage_model, run_stages
from errormodels import (
    ErrorCatalog,
    Method,
    OperandStats,
    ValidationRow,
    median_abs_error,
    predict,
    save_stats,
    write_validation,
)

MARLIN_LEVELS = [f"marlin:{lv}" for lv in (1, 15, 63, 127, 128, 255)]


def configs(quick: bool, mnist_root: Path) -> dict[str, TrainConfig]:
    """The shipped configs; MARLIN MNIST shortened (part of MNIST, fewer epochs) for a bench."""
    mnist = {"data_args.root": str(mnist_root), "data_args.download": False,
             "data_args.limit_train": 6000 if quick else 20000, "limit_val_batches": 4,
             "float_stage.epochs": 2 if quick else 4, "float_stage.milestones": [],
             "qat.epochs": 1, "noise_stage.epochs": 1 if quick else 2}
    digits = {"float_stage.epochs": 6, "float_stage.milestones": [], "qat.epochs": 2,
              "noise_stage.epochs": 2} if quick else {}
    # LeNet-5 trained for MARLIN's 0..255 activations (the default demo's catalog is signed)
    return {"lenet5_digits": build_config(["digits_lenet5"], {**digits, "progress_bar": False,
                                                              "catalog": "marlin:*"}),
            "marlin_mnist": build_config(["marlin_mnist"], {**mnist, "progress_bar": False})}


def trained_model(run: Path, cfg: TrainConfig):
    """Train (or resume) float -> QAT -> noise and return the noise-stage model and data."""
    results = run_stages(run, cfg, ("float", "qat", "noise"))
    dm = build_datamodule(cfg.data, seed=cfg.seed, **cfg.data_args)
    dm.prepare_data()
    dm.setup()
    model = load_stage_model("noise", run, cfg, dm)
    set_mode(model, "noise")
    return model.eval(), dm, results[-1].test_acc


def validate(name: str, model, batches, specs, n_fields: int, seed: int
             ) -> tuple[list[ValidationRow], list[OperandStats], float]:
    """Rows for every (layer, spec, method); also the stats and the measuring time."""
    stats = collect_stats(model, batches, n_fields=n_fields, seed=seed)
    t0 = time.perf_counter()
    measured = {(m.layer, m.multiplier): m for m in measure_errors(model, batches, specs)}
    t_meas = time.perf_counter() - t0
    cat = ErrorCatalog.build(specs)
    rows = []
    for method in Method:
        pred = predict(stats, cat, method)
        for i, st in enumerate(stats):
            for j, spec in enumerate(specs):
                m = measured[(st.name, spec)]
                rows.append(ValidationRow(name, st.name, spec, method.value,
                                          float(pred.std[i, j]), m.std,
                                          float(pred.mean[i, j]), m.mean))
    return rows, stats, t_meas


def print_table(rows: list[ValidationRow]) -> None:
    by = {(r.layer, r.multiplier, r.method): r for r in rows}
    keys = list(dict.fromkeys((r.layer, r.multiplier) for r in rows))
    order = (Method.FIXED_FIELD, Method.CHANNEL, Method.POPULATION, Method.IID)
    print(f"  {'layer':<14} {'multiplier':<15} {'measured std':>12} {'fixed':>7} {'channel':>7} "
          f"{'popul.':>7} {'iid':>7}  {'meas. mean':>10} {'pred. mean':>10}")
    for layer, spec in keys:
        f, c, p, i = (by[(layer, spec, m.value)] for m in order)
        print(f"  {layer:<14} {spec:<15} {f.measured_std:>12.4g} {f.ratio:>7.3f} {c.ratio:>7.3f} "
              f"{p.ratio:>7.3f} {i.ratio:>7.3f}  {f.measured_mean:>10.4g} "
              f"{f.predicted_mean:>10.4g}")


def summary(label: str, rows: list[ValidationRow]) -> None:
    parts = []
    for m in Method:
        sel = [r for r in rows if r.method == m.value]
        parts.append(f"{m.value} {median_abs_error(sel) * 100:.1f} %")
    print(f"  median |pred/meas - 1| {label}: " + ", ".join(parts))


def timing(repeats: int = 5) -> None:
    """All 256 MARLIN levels for 20 ResNet-20-shaped layers, N=64 fields each."""
    rng = np.random.default_rng(0)
    fan_ins = [27] + [144] * 7 + [288] * 6 + [576] * 5 + [64]
    stats = [OperandStats.from_operands(
        f"layer{i}", np.clip(np.round(rng.normal(0, 25, size=(16, n))), -127, 127).astype(int),
        rng.integers(0, rng.integers(16, 256, size=(64, 1)), size=(64, n)),
        multiplications=n * 1024, out_std=1.0, out_mean=0.0, seed=0)
        for i, n in enumerate(fan_ins)]
    t0 = time.perf_counter()
    cat = ErrorCatalog.build("marlin:*")
    t_cat = time.perf_counter() - t0
    t0 = time.perf_counter()
    ErrorCatalog.build("marlin:*")
    t_cat2 = time.perf_counter() - t0
    print(f"timing: catalog of 256 MARLIN error tables {t_cat:.2f} s (first, hwlib tables "
          f"computed), {t_cat2:.2f} s (hwlib cache warm)")
    for threads in (None, 1):
        label = "BLAS default threads" if threads is None else "BLAS 1 thread"
        with threadpool_limits(limits=threads):
            for method in Method:
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    predict(stats, cat, method)
                    ts.append(time.perf_counter() - t0)
                print(f"timing: predict {len(stats)} layers x 256 levels, N=64, "
                      f"{method.value:<11} ({label}): first {ts[0] * 1e3:.0f} ms (float tables "
                      f"cached on first use), then median {np.median(ts[1:]) * 1e3:.0f} ms")
        cat = ErrorCatalog.build("marlin:*")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=Path("runs/errormodel_validation"))
    ap.add_argument("--models", default="lenet5_digits,marlin_mnist")
    ap.add_argument("--n-fields", type=int, default=64)
    ap.add_argument("--images", type=int, default=256, help="training images sampled (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    add_data_dir(ap)
    ap.add_argument("--mnist-dir", type=Path, default=None,
                    help="directory of the MNIST IDX files (default: DATA_DIR/mnist)")
    ap.add_argument("--quick", action="store_true", help="shorter trainings")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if not args.skip_timing:
        timing()
    mnist = args.mnist_dir or ("" if "marlin_mnist" not in args.models
                                else Path(dataset_dir(args.data_dir, "mnist")))
    cfgs = configs(args.quick, Path(mnist))
    evo = [s for s in hwlib.expand("evo:mul8s_*") if not hwlib.get(s).is_exact]
    all_rows: list[ValidationRow] = []
    for name in filter(None, args.models.split(",")):
        run = args.work_dir / name
        t0 = time.perf_counter()
        model, dm, acc = trained_model(run, cfgs[name])
        print(f"\n{name}: noise-stage test accuracy {acc:.4f} (trained/loaded in "
              f"{time.perf_counter() - t0:.0f} s), layers {[n for n, _ in approx_layers(model)]}")
        batches = [dm.normalize(x) for x in
                   sample_batches(dm.split("train"), args.images, 64, seed=args.seed)]
        rows, stats, t_m = validate(name, model, batches, MARLIN_LEVELS, args.n_fields, args.seed)
        save_stats(run / "operand_stats.npz", stats)
        # signed EvoApprox circuits take activations 0..127: narrow the quantizers (approximate_)
        narrow = approximate_(copy.deepcopy(model),
                              {n: "evo:mul8s_1KV6" for n, _ in approx_layers(model)})
        rows_e, _, t_e = validate(name, narrow, batches, evo, args.n_fields, args.seed)
        print(f"  measured on {args.images} images: MARLIN {t_m:.1f} s, EvoApprox {t_e:.1f} s; "
              f"ratio columns are predicted/measured std")
        print_table(rows + rows_e)
        summary("MARLIN levels", rows)
        summary("EvoApprox signed", rows_e)
        summary("all", rows + rows_e)
        write_validation(run / "errormodel_validation.csv", rows + rows_e)
        all_rows += rows + rows_e
    if all_rows:
        print()
        summary("over every model, layer and multiplier", all_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
