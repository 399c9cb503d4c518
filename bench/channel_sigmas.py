"""Filter matching from per-channel sigmas against filter matching from the layer's sigma.

Trains the same network twice through the pipeline up to the integer export (same seed, so the
float and QAT stages are identical): once with one learned sigma per layer, once with
``noise.per_channel`` (one sigma per output channel). Each run's sigmas, scaled by each of
``--scales``, are matched at filter granularity (``errormodels.channels.match_filters``, groups
of ``--group`` output channels); every matched assignment runs bit-exact on the run's integer
network, without retraining, on the validation split and on the held-out test split.

For each loss ``L`` of ``--losses`` the bench picks, on validation, the cheapest assignment
within ``L`` of the exact integer network's validation accuracy and reports its energy and its
test accuracy; and it prints, on test, the cheapest assignment within ``L`` of the exact test
accuracy (the energy at equal test accuracy). Output: a table per run and a JSON file.

    OMP_NUM_THREADS=1 python bench/channel_sigmas.py --run-dir runs/bench_channel_sigmas
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import errormodels as em
from agn.config import load_pipeline_config
from agn.intsim import IntegerScorer
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from errormodels.channels import match_filters
from hwlib.fileio import atomic_write_json

SCALES = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0)


def sweep(run: Path, cfg, scales: list[float], group: int, threads: int) -> dict:
    """Exact accuracies and, per sigma scale, the filter-matched energy and accuracies."""
    ctx = Context(run, cfg, progress=False, threads=threads)
    model = ctx.model("noise")
    net = ctx.search_network()
    scorers = {s: IntegerScorer(net, *ctx.integer_split(model, s)) for s in ("val", "test")}
    sigmas = em.read_sigmas(run / em.SIGMAS_FILE)
    stats = em.load_stats(run / em.STATS_FILE)
    catalog = em.ErrorCatalog.build(cfg.catalog)
    exact = {layer.name: "exact" for layer in net.layers}
    out = {"exact": {s: 1 - f(exact) for s, f in scorers.items()},
           "sizes": {s: len(ctx.dm.split(s)) for s in ("train", "val", "test")}, "points": []}
    for scale in scales:
        asg = match_filters([sg.scaled(scale) for sg in sigmas], stats, catalog, group=group)
        acc = {s: 1 - f(asg.specs()) for s, f in scorers.items()}
        out["points"].append({"scale": scale, "energy": asg.energy, **acc})
    return out


def cheapest(points: list[dict], split: str, floor: float) -> dict | None:
    """The lowest-energy point whose ``split`` accuracy is at least ``floor``."""
    ok = [p for p in points if p[split] >= floor - 1e-12]
    return min(ok, key=lambda p: p["energy"]) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/bench_channel_sigmas")
    ap.add_argument("--config", default="digits_lenet5",
                    help="pipeline configuration (file or name in configs/)")
    ap.add_argument("--data-dir", help="dataset directory (not needed for digits)")
    ap.add_argument("--catalog", help="override the configuration's catalog")
    ap.add_argument("--epochs", type=int, nargs=4, metavar=("FLOAT", "QAT", "NOISE", "RETRAIN"))
    ap.add_argument("--train-batches", type=int, default=0, help="batches per epoch (0 = all)")
    ap.add_argument("--group", type=int, default=2)
    ap.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    ap.add_argument("--losses", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the figures here (default RUN/bench.json)")
    args = ap.parse_args()

    from agn.config import deep_merge, epochs_data

    results = {}
    for label, per_channel in (("layer", False), ("channel", True)):
        over: dict = {"train": {"seed": args.seed, "progress_bar": False,
                                "noise": {"per_channel": per_channel}}}
        if args.data_dir:
            over["train"]["data_args"] = {"root": args.data_dir}
        if args.catalog:
            over["train"]["catalog"] = args.catalog
        if args.train_batches:
            over["train"]["limit_train_batches"] = args.train_batches
        if args.epochs:
            over = deep_merge(over, epochs_data(args.epochs))
        cfg = load_pipeline_config([args.config], over)
        run = Path(args.run_dir) / label
        status = run_pipeline(run, cfg, threads=args.threads, until="export_search",
                              progress=False, log=lambda m: None)
        res = sweep(run, cfg, args.scales, args.group, args.threads)
        res["qat_test_acc"] = status.finished["qat"]["test_acc"]
        res["noise_test_acc"] = status.finished["noise"]["test_acc"]
        results[label] = res

    print(f"{args.config}, catalog {cfg.catalog}, seed {args.seed}, group {args.group}; "
          f"splits {results['layer']['sizes']}; no retraining; bit-exact integer networks")
    for label, res in results.items():
        print(f"\n{label} sigmas: QAT test {100 * res['qat_test_acc']:.2f} %, exact integer "
              f"val {100 * res['exact']['val']:.2f} % / test {100 * res['exact']['test']:.2f} %")
        print("   scale  energy     val %   test %")
        for p in res["points"]:
            print(f"  {p['scale']:6.2f}  {p['energy']:.4f}  {100 * p['val']:7.2f}  "
                  f"{100 * p['test']:7.2f}")
    print("\nloss   | chosen on val: energy (test %)        | on test: energy at equal accuracy")
    summary = []
    for loss in args.losses:
        row = {"loss": loss}
        cells = []
        for label, res in results.items():
            v = cheapest(res["points"], "val", res["exact"]["val"] - loss)
            t = cheapest(res["points"], "test", res["exact"]["test"] - loss)
            row[label] = {"val_choice": v, "test_energy": t["energy"] if t else None}
            cells.append((label, v, t))
        summary.append(row)
        left = "  ".join(f"{lb} {v['energy']:.4f} ({100 * v['test']:.2f})" if v else f"{lb} -"
                         for lb, v, _ in cells)
        right = "  ".join(f"{lb} {t['energy']:.4f}" if t else f"{lb} -" for lb, _, t in cells)
        print(f"{100 * loss:4.1f}pp | {left} | {right}")
    path = Path(args.json) if args.json else Path(args.run_dir) / "bench.json"
    atomic_write_json(path, {"config": args.config, "catalog": cfg.catalog, "seed": args.seed,
                             "group": args.group, "runs": results, "summary": summary,
                             "command": " ".join(["python", *sys.argv])})
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()
