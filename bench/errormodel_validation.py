"""Error-model validation: predicted against bit-exact measured layer output error, and timing.

For every approximable layer of the MARLIN MNIST network (MNIST) and of ResNet-8 (Fashion-MNIST)
(optionally LeNet-5 on 8x8 digits), and MARLIN levels 1, 15, 63, 127, 128, 255 plus the signed
EvoApprox circuits ``evo:mul8s_*`` (activations narrowed to 0..127), the predictions of every
formula (sample: all field x channel pairs, sample_1ch: one channel per field; channel,
fixed-field, population, i.i.d.) from operand statistics of a seeded
sample of training images are compared with the output error measured by the bit-exact engine
(agn.sim) on held-out test images, each layer on the integer operands it really sees. Figures per
catalog and formula: median and worst |predicted std / measured std - 1| over (layer,
multiplier) pairs, and the mean's error |predicted mean - measured mean| / measured std. The
measurement's own noise is shown by measuring the test images in two seeded halves:
|half A std / half B std - 1|.

Models are trained here through agn.training (float -> QAT -> noise; the shipped configs
marlin_mnist and resnet8_fashion_mnist shortened, digits_lenet5) in --work-dir, or reused from
there when already trained. Prints the table and the summary; writes
``<work-dir>/<model>/errormodel_validation.csv`` (read by notebooks/layer_robustness.py) and
``<work-dir>/errormodel_validation.json``.

    python bench/errormodel_validation.py --data-dir DATA [--work-dir runs/errormodel_validation]
        [--models marlin_mnist,resnet8_fmnist] [--images 1024] [--n-fields 4096]
        [--test-images 1024] [--seed 0] [--quick] [--skip-timing]
    # DATA holds mnist/ and fashion-mnist/ with their IDX files (default: $AGN_DATA_DIR)
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from benchdata import add_data_dir, dataset_dir, write_results
from threadpoolctl import threadpool_limits

import hwlib
from agn.cli.train import build_config
from agn.data import build_datamodule
from agn.layers import approx_layers, approximate_, set_mode
from agn.stats import MeasuredError, collect_stats, measure_errors, sample_batches
from agn.training import TrainConfig, load_stage_model, run_stages
from errormodels import (
    ErrorCatalog,
    Method,
    OperandStats,
    ValidationRow,
    predict,
    save_stats,
    write_validation,
)

MARLIN_LEVELS = [f"marlin:{lv}" for lv in (1, 15, 63, 127, 128, 255)]


def configs(quick: bool, data_dir: Path | None, models: list[str]) -> dict[str, TrainConfig]:
    """The shipped configs; MARLIN MNIST and ResNet-8 shortened (part of the training images,
    fewer epochs) for a bench."""
    def short(dataset: str, images: int) -> dict:
        return {"data_args.root": dataset_dir(data_dir, dataset), "data_args.download": False,
                "data_args.limit_train": images // 2 if quick else images,
                "limit_val_batches": 4, "float_stage.epochs": 2 if quick else 4,
                "float_stage.milestones": [], "qat.epochs": 1,
                "noise_stage.epochs": 1 if quick else 2, "progress_bar": False}
    digits = {"float_stage.epochs": 6, "float_stage.milestones": [], "qat.epochs": 2,
              "noise_stage.epochs": 2} if quick else {}
    out = {}
    for name in models:
        if name == "lenet5_digits":  # trained for MARLIN's 0..255 activations (demo: signed)
            out[name] = build_config(["digits_lenet5"], {**digits, "progress_bar": False,
                                                         "catalog": "marlin:*"})
        elif name == "marlin_mnist":
            out[name] = build_config(["marlin_mnist"], short("mnist", 12000))
        elif name == "resnet8_fmnist":
            out[name] = build_config(["resnet8_fashion_mnist"], short("fashion-mnist", 12000))
        else:
            raise SystemExit(f"--models: unknown model {name!r}; expected lenet5_digits, "
                             f"marlin_mnist or resnet8_fmnist")
    return out


def trained_model(run: Path, cfg: TrainConfig):
    """Train (or resume) float -> QAT -> noise and return the noise-stage model and data."""
    results = run_stages(run, cfg, ("float", "qat", "noise"))
    dm = build_datamodule(cfg.data, seed=cfg.seed, **cfg.data_args)
    dm.prepare_data()
    dm.setup()
    model = load_stage_model("noise", run, cfg, dm)
    set_mode(model, "noise")
    return model.eval(), dm, results[-1].test_acc


ORDER = (Method.SAMPLE, Method.CHANNEL, Method.FIXED_FIELD, Method.POPULATION, Method.IID)
#: (label, formula, channels_per_field) of every prediction compared; "sample_1ch" pairs each
#: field with one channel (cycling), at 1/C of the cost of all pairs
VARIANTS = [(m.value, m, None) for m in ORDER[:1]] + [("sample_1ch", Method.SAMPLE, 1)] + [
    (m.value, m, None) for m in ORDER[1:]]
LABELS = [v[0] for v in VARIANTS]


def pooled(parts: list[MeasuredError]) -> MeasuredError:
    """One measurement from measurements of disjoint parts (counts, means and stds pooled)."""
    n = sum(p.count for p in parts)
    mean = sum(p.count * p.mean for p in parts) / n
    second = sum(p.count * (p.std ** 2 + p.mean ** 2) for p in parts) / n
    return MeasuredError(parts[0].layer, parts[0].multiplier, mean,
                         float(np.sqrt(max(second - mean * mean, 0.0))), n)


def validate(name: str, model, train_batches, test_halves, specs, n_fields: int, seed: int
             ) -> tuple[list[ValidationRow], list[OperandStats], dict]:
    """Rows for every (layer, spec, method), the statistics and the measurement's noise/times."""
    t0 = time.perf_counter()
    stats = collect_stats(model, train_batches, n_fields=n_fields, seed=seed)
    t_stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    halves = [{(m.layer, m.multiplier): m for m in measure_errors(model, h, specs)}
              for h in test_halves]
    t_meas = time.perf_counter() - t0
    cat = ErrorCatalog.build(specs)
    rows, t_pred, noise = [], {}, []
    for label, method, per_field in VARIANTS:
        t0 = time.perf_counter()
        pred = predict(stats, cat, method, channels_per_field=per_field)
        t_pred[label] = time.perf_counter() - t0
        for i, st in enumerate(stats):
            for j, spec in enumerate(specs):
                parts = [h[(st.name, spec)] for h in halves]
                m = pooled(parts)
                rows.append(ValidationRow(name, st.name, spec, label,
                                          float(pred.std[i, j]), m.std,
                                          float(pred.mean[i, j]), m.mean))
                if label == LABELS[0] and parts[1].std > 0:
                    noise.append(abs(parts[0].std / parts[1].std - 1))
    info = {"stats_seconds": t_stats, "measure_seconds": t_meas, "predict_seconds": t_pred,
            "halves_std_disagreement_median": float(np.median(noise)),
            "halves_std_disagreement_worst": float(np.max(noise))}
    return rows, stats, info


def print_table(rows: list[ValidationRow]) -> None:
    by = {(r.layer, r.multiplier, r.method): r for r in rows}
    keys = list(dict.fromkeys((r.layer, r.multiplier) for r in rows))
    print(f"  {'layer':<18} {'multiplier':<15} {'meas. std':>10} "
          + " ".join(f"{lb[:7]:>7}" for lb in LABELS)
          + f"  {'meas. mean':>10} {'sample':>10} {'channel':>10}")
    for layer, spec in keys:
        rs = [by[(layer, spec, lb)] for lb in LABELS]
        print(f"  {layer:<18} {spec:<15} {rs[0].measured_std:>10.4g} "
              + " ".join(f"{r.ratio:>7.3f}" for r in rs)
              + f"  {rs[0].measured_mean:>10.4g} {rs[0].predicted_mean:>10.4g} "
              f"{rs[LABELS.index('channel')].predicted_mean:>10.4g}")


def figures(rows: list[ValidationRow]) -> dict[str, dict[str, float]]:
    """Per prediction: median and worst |pred/meas std - 1| and |pred - meas mean| / meas std."""
    out = {}
    for label in LABELS:
        sel = [r for r in rows if r.method == label and r.measured_std > 0]
        std_err = np.abs(np.array([r.ratio for r in sel]) - 1)
        mean_err = np.array([abs(r.predicted_mean - r.measured_mean) / r.measured_std
                             for r in sel])
        worst = sel[int(np.argmax(std_err))]
        out[label] = {"pairs": len(sel), "std_error_median": float(np.median(std_err)),
                        "std_error_worst": float(std_err.max()),
                        "worst_pair": f"{worst.layer} x {worst.multiplier}",
                        "mean_error_median": float(np.median(mean_err)),
                        "mean_error_worst": float(mean_err.max())}
    return out


def summary(label: str, rows: list[ValidationRow]) -> dict[str, dict[str, float]]:
    figs = figures(rows)
    print(f"  {label}: |pred/meas std - 1| median / worst; |mean error| / std median / worst")
    for method, f in figs.items():
        print(f"    {method:<11} {f['std_error_median'] * 100:5.1f} % / "
              f"{f['std_error_worst'] * 100:5.1f} %   {f['mean_error_median'] * 100:5.1f} % / "
              f"{f['mean_error_worst'] * 100:5.1f} %   (worst std: {f['worst_pair']}, "
              f"{f['pairs']} pairs)")
    return figs


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
            for method in ORDER[1:]:  # histogram formulas (sample: timed per model below)
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
    ap.add_argument("--models", default="marlin_mnist,resnet8_fmnist",
                    help="comma-separated: marlin_mnist, resnet8_fmnist, lenet5_digits")
    ap.add_argument("--n-fields", type=int, default=4096,
                    help="receptive fields sampled per layer for the statistics")
    ap.add_argument("--images", type=int, default=1024,
                    help="training images the statistics are collected on (seeded sample)")
    ap.add_argument("--test-images", type=int, default=1024,
                    help="held-out test images the errors are measured on (two seeded halves)")
    ap.add_argument("--seed", type=int, default=0)
    add_data_dir(ap)
    ap.add_argument("--quick", action="store_true", help="shorter trainings")
    ap.add_argument("--skip-timing", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if not args.skip_timing:
        timing()
    models = [m for m in args.models.split(",") if m]
    cfgs = configs(args.quick, args.data_dir, models)
    evo = [s for s in hwlib.expand("evo:mul8s_*") if not hwlib.get(s).is_exact]
    results: dict = {"settings": {**{k: str(v) if isinstance(v, Path) else v
                                     for k, v in vars(args).items()},
                                  "marlin": MARLIN_LEVELS, "evo": evo}, "models": {}}
    all_rows: list[ValidationRow] = []
    for name in models:
        run = args.work_dir / name
        t0 = time.perf_counter()
        model, dm, acc = trained_model(run, cfgs[name])
        print(f"\n{name}: noise-stage test accuracy {acc:.4f} (trained/loaded in "
              f"{time.perf_counter() - t0:.0f} s), layers {[n for n, _ in approx_layers(model)]}")
        train = [dm.normalize(x) for x in
                 sample_batches(dm.split("train"), args.images, 64, seed=args.seed)]
        test = [dm.normalize(x) for x in
                sample_batches(dm.split("test"), args.test_images, 64, seed=args.seed + 1)]
        halves = [test[0::2], test[1::2]]
        rows_m, stats, info_m = validate(name, model, train, halves, MARLIN_LEVELS,
                                         args.n_fields, args.seed)
        save_stats(run / "operand_stats.npz", stats)
        # signed EvoApprox circuits take activations 0..127: narrow the quantizers (approximate_)
        narrow = approximate_(copy.deepcopy(model),
                              {n: "evo:mul8s_1KV6" for n, _ in approx_layers(model)})
        rows_e, _, info_e = validate(name, narrow, train, halves, evo, args.n_fields, args.seed)
        print(f"  statistics: {args.n_fields} fields per layer from {len(dm.split('train'))} "
              f"training images' seeded sample of {args.images}; measured on "
              f"{sum(len(b) for b in test)} test images (of {len(dm.split('test'))}); ratio "
              f"columns are predicted/measured std")
        print_table(rows_m + rows_e)
        results["models"][name] = {
            "noise_stage_test_accuracy": acc, "layers": [s.name for s in stats],
            "fan_in": [s.fan_in for s in stats],
            "marlin": {"figures": summary("MARLIN levels", rows_m), **info_m},
            "evo": {"figures": summary("EvoApprox signed", rows_e), **info_e},
            "all": summary("all", rows_m + rows_e)}
        write_validation(run / "errormodel_validation.csv", rows_m + rows_e)
        all_rows += rows_m + rows_e
    if len(models) > 1:
        print()
        results["all"] = summary("every model, layer and multiplier", all_rows)
    write_results(args.work_dir / "errormodel_validation.json", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
