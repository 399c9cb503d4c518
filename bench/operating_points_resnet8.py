"""Runtime operating points (QoS-Nets) of ResNet-8 on Fashion-MNIST over the signed EvoApprox
catalog, K circuits: per point the energy, the test accuracy against the exact integer network
and the parameter overhead, beside QoS-Nets' MobileNetV2 figures.

Trains ResNet-8 through the pipeline's float, QAT, noise and statistics stages
(``configs/resnet8_fashion_mnist.yaml`` with the catalog ``evo:mul8s_*``, whose signed circuits
take activations 0..127), then runs the operating-points stage: selection with tolerance
factors (default 0.3, 1, 2) into at most K circuits, by QoS-Nets' clustering or (``--method
joint``, the default) NSGA-II over the three points jointly, seeded by the clustering and compared
with jittered clusterings at the same number of scored networks; joint retraining with per-point
affines, one integer network per point scored bit-exactly on the test split, and the switched
firmware validated on the host. ``--epochs`` scales the float stage's learning-rate milestones.

    python bench/operating_points_resnet8.py --data-dir /path/to/fashion-mnist \\
        [--run-dir runs/bench_points] [--epochs 20 3 5] [--batches 0] [--points-epochs 2] \\
        [--method joint] [--factors 0.3 1 2] [--joint-pop 20] [--joint-gen 10] [--val 1000] \\
        [--compensate]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from agn.config import deep_merge, load_pipeline_config
from agn.operating_points.stage import PointsSettings, run_operating_points
from agn.pipeline import run_pipeline

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "resnet8_fashion_mnist.yaml"
#: QoS-Nets, MobileNetV2, 4 circuits, 3 points: multiplication power savings and top-5 loss.
QOS_NETS = "power -15.3 % .. -42.8 % at 0.3 .. 2.33 pp top-5 loss, 2.75 % extra parameters"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="directory of the Fashion-MNIST IDX files")
    ap.add_argument("--run-dir", default="runs/bench_points")
    ap.add_argument("--catalog", default="evo:mul8s_*")
    ap.add_argument("--max-circuits", type=int, default=4)
    ap.add_argument("--epochs", type=int, nargs=3, metavar=("FLOAT", "QAT", "NOISE"),
                    help="epochs of the training stages (default: the configuration's)")
    ap.add_argument("--batches", type=int, default=0,
                    help="training batches per epoch in every stage (0 = all)")
    ap.add_argument("--points-epochs", type=int, default=2)
    ap.add_argument("--points-batches", type=int,
                    help="batches per joint-retraining epoch (default: --batches)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--method", choices=("cluster", "joint"), default="joint",
                    help="selection of the points (joint: NSGA-II seeded by the clustering)")
    ap.add_argument("--factors", type=float, nargs=3, default=(0.3, 1.0, 2.0))
    ap.add_argument("--compensate", action="store_true",
                    help="error-mean compensation per point (off by default, as in the stage)")
    ap.add_argument("--joint-pop", type=int, default=20)
    ap.add_argument("--joint-gen", type=int, default=10)
    ap.add_argument("--val", type=int, default=1000, help="validation images per candidate")
    args = ap.parse_args()

    over = {"train": {"seed": args.seed, "catalog": args.catalog, "progress_bar": False,
                      "data_args": {"root": args.data_dir}}}
    if args.epochs:
        over = deep_merge(over, {"train": {k: {"epochs": e} for k, e in
                                           zip(("float_stage", "qat", "noise_stage"),
                                               args.epochs)}})
        # the float stage's learning-rate milestones scaled to its epochs
        base = load_pipeline_config([CONFIG]).train.float_stage
        over["train"]["float_stage"]["milestones"] = sorted(
            {max(1, round(m * args.epochs[0] / base.epochs)) for m in base.milestones})
    if args.batches:
        over = deep_merge(over, {"train": {"limit_train_batches": args.batches}})
    cfg = load_pipeline_config([CONFIG], over)
    run = Path(args.run_dir)
    status = run_pipeline(run, cfg, threads=args.threads, until="export_search")
    print("training:", {k: round(v["test_acc"], 4) for k, v in status.finished.items()
                        if "test_acc" in v})
    res = run_operating_points(run, PointsSettings(
        points=3, max_circuits=args.max_circuits, catalog=args.catalog, factors=args.factors,
        epochs=args.points_epochs, method=args.method,
        batches=args.batches if args.points_batches is None else args.points_batches,
        joint_pop=args.joint_pop, joint_gen=args.joint_gen, joint_val=args.val,
        compensate=args.compensate))
    ex = res.exact["test_accuracy"]
    print(f"\ncatalog {res.catalog}, {len(res.circuits)} circuits (K = {res.max_circuits}): "
          f"{', '.join(res.circuits)}; power table {res.points[0].assignment.power_source}")
    print(f"exact integer network: test accuracy {100 * ex:.2f} %")
    print("point  factor  energy  saving   test acc  loss vs exact  extra params")
    for p in res.points:
        print(f"{p.name:5s}  {p.factor:6.2f}  {p.energy:.4f}  {100 * (1 - p.energy):5.1f} %  "
              f"{100 * p.test_accuracy:6.2f} %  {100 * (ex - p.test_accuracy):+6.2f} pp     "
              f"{p.extra_parameters} ({100 * p.parameter_overhead:.2f} %)")
    d = res.details
    energies = [p.energy for p in res.points]
    print(f"span of multiplication energy: {100 * (max(energies) - min(energies)):.1f} % "
          f"(target >= 40 %); total parameter overhead "
          f"{100 * d['total_parameter_overhead']:.2f} % (target <= 3 %)")
    print(f"firmware: {d['validation']['mismatches']} mismatches over the switch sequence "
          f"{d['validation']['sequence']}; {d['validation']['bytes_per_extra_point']} bytes per "
          f"extra point")
    print(f"QoS-Nets (MobileNetV2 on ImageNet): {QOS_NETS}")
    if args.method == "joint":
        print_joint(res)


def print_joint(res) -> None:
    """The joint search's equal-budget comparison with jittered clusterings."""
    j = res.details["joint"]
    print(f"\njoint NSGA-II ({j['pop_size']} x {j['n_gen']}, at most {res.max_circuits} "
          f"circuits, no retraining, {j['val_samples']} validation images) vs jittered "
          f"clusterings, {j['budget_networks']} scored networks each:")
    print(f"  hypervolume of (mean energy, mean error) over each set's points: NSGA-II "
          f"{j['nsga_hypervolume']:.4f} ({j['nsga_sets']} sets), clustering "
          f"{j['clustering_hypervolume']:.4f} ({j['clustering_sets']} sets)")
    for what in ("clustering_set", "chosen_set"):
        print(f"  {what}: " + ", ".join(f"{p['energy']:.4f} / {100 * p['error']:.2f} %"
                                         for p in j[what]) + " (energy / validation error)")


if __name__ == "__main__":
    main()
