"""ResNet-8 on Fashion-MNIST with the signed EvoApprox circuits: multiplication-energy saving
against test accuracy, before retraining, after brief retraining of front points, and for the
retrained chosen point, all against the exact integer network.

Runs the pipeline (``configs/resnet8_fashion_mnist.yaml`` with the catalog, epochs, training
images and search budget set here, a confirmation split held out of the training data) up to
the export of the retrained network, then reads its records: the front re-scored on the test
split, the briefly retrained points (``search.retrain_points``) and the retrained integer
network. Reports, for each, the largest saving within ``--loss`` of the exact integer network's
test accuracy.

Writes ``<run-dir>/bench_resnet8_fmnist.json`` and prints it.

    python bench/resnet8_fmnist_evo.py --data-dir DATA --run-dir runs/bench_resnet8_fmnist
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchdata import add_data_dir, command_line, dataset_dir, write_results

from agn.config import epochs_data, load_pipeline_config
from agn.config.schema import deep_merge
from agn.pipeline import run_pipeline
from agn.pipeline.retrain_front import RETRAINED_FILE

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "resnet8_fashion_mnist.yaml"


def best_saving(points: list[tuple[float, float]], exact: float, loss: float) -> dict | None:
    """The lowest-energy (energy, test accuracy) point within ``loss`` of ``exact``."""
    ok = [(e, a) for e, a in points if a >= exact - loss - 1e-12]
    if not ok:
        return None
    e, a = min(ok)
    return {"energy": e, "saving": 1.0 - e, "test_accuracy": a, "loss_pp": 100 * (exact - a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir(ap)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/bench_resnet8_fmnist"))
    ap.add_argument("--catalog", default="evo:mul8s_*")
    ap.add_argument("--epochs", type=int, nargs=4, default=(8, 2, 3, 2),
                    metavar=("F", "Q", "N", "R"), help="float, QAT, noise, retrain epochs")
    ap.add_argument("--milestones", type=int, nargs="*", default=(12, 17),
                    help="float-stage epochs after which the learning rate drops")
    ap.add_argument("--limit-train", type=int, default=0, help="training images (0 = all)")
    ap.add_argument("--confirm-fraction", type=float, default=0.05)
    ap.add_argument("--pop", type=int, default=40)
    ap.add_argument("--gen", type=int, default=10)
    ap.add_argument("--val", type=int, default=2000, help="validation images per candidate")
    ap.add_argument("--retrain-points", type=int, default=4)
    ap.add_argument("--retrain-batches", type=int, default=100,
                    help="batches per epoch of each brief retraining")
    ap.add_argument("--max-loss", type=float, default=0.01)
    ap.add_argument("--loss", type=float, default=0.01, help="test loss of the saving figure")
    ap.add_argument("--compensate", action="store_true",
                    help="error-mean compensation in matching, search scoring and retraining")
    ap.add_argument("--round-operands", action="store_true",
                    help="multiplier-aware operand rounding in retraining")
    ap.add_argument("--calibration", default="max", choices=("max", "percentile", "mse"))
    ap.add_argument("--cache-mb", type=int, default=1024,
                    help="prefix-cache budget of each scorer (result-neutral; lower it when "
                    "memory is short)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    data = deep_merge(epochs_data(args.epochs), {
        "train": {"seed": args.seed, "catalog": args.catalog, "progress_bar": False,
                  "float_stage": {"milestones": list(args.milestones)},
                  "compensate": args.compensate, "round_operands": args.round_operands,
                  "calibration": args.calibration,
                  "data_args": {"root": dataset_dir(args.data_dir, "fashion-mnist"),
                                "download": False, "limit_train": args.limit_train,
                                "confirm_fraction": args.confirm_fraction}},
        "search": {"pop_size": args.pop, "n_gen": args.gen, "val_samples": args.val,
                   "baseline": False, "max_loss": args.max_loss,
                   "retrain_points": args.retrain_points,
                   "candidate_batches": args.retrain_batches, "compensate": args.compensate,
                   "cache_bytes": args.cache_mb << 20},
        "match": {"compensate": args.compensate}})
    cfg = load_pipeline_config([CONFIG], data)
    run = args.run_dir
    t0 = time.time()
    status = run_pipeline(run, cfg, threads=args.threads, until="export", progress=False)
    done = status.finished
    s = done["search"]
    exact = s["exact_test_accuracy"]
    pareto = json.loads((run / "pareto.json").read_text())
    retrained = json.loads((run / RETRAINED_FILE).read_text())
    front = [(p["energy"], p["test_accuracy"]) for p in pareto["front"]]
    after = [(p["energy"], p["after"]["test"]) for p in retrained["points"]]
    chosen = json.loads((run / "chosen_assignment.json").read_text())
    results = {
        "command": command_line("resnet8_fmnist_evo.py", args),
        "seconds": round(time.time() - t0, 1), "catalog": args.catalog,
        "power_source": pareto["power_source"], "splits": pareto["splits"],
        "training_test_accuracy": {k: v["test_acc"] for k, v in done.items() if "test_acc" in v},
        "exact_integer_test_accuracy": exact, "evaluations": s["evaluations"],
        "matched": {"energy": done["match"]["energy"], "test_accuracy": s["seed_test_accuracy"]},
        "front": [{"energy": p["energy"], "val_accuracy": p["accuracy"],
                   "confirm_accuracy": p.get("confirm_accuracy"),
                   "test_accuracy": p["test_accuracy"], "near_chance": p["near_chance"]}
                  for p in pareto["front"]],
        "retrained_points": retrained["points"],
        "chosen": {"energy": chosen["energy"], "details": chosen["details"],
                   "retrained_integer_test_accuracy": done["export"]["integer_acc"]},
        f"best_saving_within_{100 * args.loss:g}pp": {
            "front_without_retraining": best_saving(front, exact, args.loss),
            "briefly_retrained_points": best_saving(after, exact, args.loss),
            "chosen_after_retraining": best_saving(
                [(chosen["energy"], done["export"]["integer_acc"])], exact, args.loss)}}
    write_results(run / "bench_resnet8_fmnist.json", results)


if __name__ == "__main__":
    main()
