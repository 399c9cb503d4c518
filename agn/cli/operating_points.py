"""``agn operating-points``: runtime operating points on an existing run directory."""
from __future__ import annotations

import argparse
from pathlib import Path

from agn.operating_points.selection import METHODS


def add_points_options(p: argparse.ArgumentParser, points_flag: str) -> None:
    """The options of the operating-points stage (``points_flag`` names the point count)."""
    p.add_argument(points_flag, dest="points", type=int, metavar="N",
                   default=3 if points_flag == "--points" else None,
                   help="number of operating points" + (" (default: %(default)s)"
                                                        if points_flag == "--points" else
                                                        ": run the operating-points stage "
                                                        "after the pipeline"))
    p.add_argument("--max-circuits", type=int, default=4, metavar="K",
                   help="distinct multiplier circuits over all points (fixed catalogs; MARLIN "
                   "has every level on chip); default %(default)s")
    p.add_argument("--factors", type=float, nargs="+", metavar="S",
                   help="tolerance factors, one per point (default 0.3 1 2 for three points)")
    p.add_argument("--points-catalog", dest="points_catalog", metavar="SPEC",
                   help="catalog of the points (default: the run's)")
    p.add_argument("--points-epochs", dest="points_epochs", type=int, default=1, metavar="E",
                   help="epochs of joint retraining of the points (default %(default)s)")
    p.add_argument("--points-batches", dest="points_batches", type=int, default=0, metavar="B",
                   help="batches per joint-retraining epoch (0 = all, the default)")
    p.add_argument("--method" if points_flag == "--points" else "--points-method",
                   dest="points_method", choices=METHODS, default="cluster",
                   help="selection: cluster (QoS-Nets' clustering, the default) or joint "
                   "(NSGA-II over all points seeded by the clustering, compared with jittered "
                   "clusterings at the same number of scored networks)")
    p.add_argument("--joint-pop", dest="joint_pop", type=int, default=20, metavar="P",
                   help="population of the joint search (default %(default)s)")
    p.add_argument("--joint-gen", dest="joint_gen", type=int, default=10, metavar="G",
                   help="generations of the joint search (default %(default)s)")
    p.add_argument("--points-compensate", dest="points_compensate", action="store_true",
                   help="error-mean compensation per point (each point's bias corrections, kept "
                   "through joint retraining and folded into its integer biases)")
    p.add_argument("--joint-val", dest="joint_val", type=int, default=1000, metavar="N",
                   help="validation images per joint candidate (0 = all; default %(default)s)")


def settings(args: argparse.Namespace):
    """The stage settings the options give."""
    from agn.operating_points.stage import PointsSettings

    return PointsSettings(points=args.points, max_circuits=args.max_circuits,
                          factors=tuple(args.factors or ()),
                          catalog=args.points_catalog, epochs=args.points_epochs,
                          batches=args.points_batches, method=args.points_method,
                          joint_pop=args.joint_pop, joint_gen=args.joint_gen,
                          joint_val=args.joint_val, compensate=args.points_compensate)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``operating-points`` subcommand."""
    p = subparsers.add_parser(
        "operating-points", help="several energy/accuracy modes of one network, switched at "
        "run time (QoS-Nets)",
        description="On a run directory whose noise training and operand statistics exist: "
        "select N operating points from scaled tolerances (at most K circuits for a fixed "
        "catalog), retrain them jointly with shared weights, export and score each integer "
        "network, emit firmware holding every point and validate each on the host; writes "
        "operating_points.json and operating_points.png.")
    p.add_argument("--run-dir", type=Path, required=True, help="the run directory")
    add_points_options(p, "--points")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the stage and print one line per point."""
    from agn.operating_points.stage import run_operating_points

    result = run_operating_points(args.run_dir, settings(args))
    for pt in result.points:
        print(f"{pt.name}: factor {pt.factor}, energy {pt.energy:.4f}, test accuracy "
              f"{pt.test_accuracy:.4f}, extra parameters {pt.extra_parameters}")
    print(f"circuits: {', '.join(result.circuits)}; "
          f"{args.run_dir / 'operating_points.json'}")
    return 0
