"""``agn pipeline``: every stage in one resumable run directory, ending in report.md."""
from __future__ import annotations

import argparse
from pathlib import Path

from agn.cli.search import add_search_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``pipeline`` subcommand."""
    p = subparsers.add_parser(
        "pipeline", help="train, learn tolerances, match, search, retrain, deploy, report",
        description="Run the whole method in RUN_DIR: float -> QAT -> noise training -> operand "
        "statistics -> error-model matching -> NSGA-II search -> retraining of the chosen point "
        "-> integer export -> firmware + bit-exact validation -> report.md. A killed run "
        "restarts at its first unfinished stage.")
    p.add_argument("--run-dir", type=Path, default=Path("runs/pipeline"),
                   help="run directory (default: %(default)s)")
    p.add_argument("--config", type=Path, help="YAML file of PipelineConfig fields (options "
                   "given on the command line override it), e.g. configs/marlin_mnist.yaml")
    p.add_argument("--quick", action="store_true",
                   help="tiny budget for smoke tests (about a minute)")
    p.add_argument("--dataset", help="digits (default), mnist, fashion-mnist, cifar10")
    p.add_argument("--data-dir", help="directory of the dataset files (mnist, fashion-mnist, "
                   "cifar10)")
    p.add_argument("--model", help="lenet5 (default), marlin_mnist, resnet8, ...")
    p.add_argument("--catalog", help="multiplier catalog, e.g. 'marlin:*' (default), "
                   "'evo:mul8s_*'")
    p.add_argument("--lam", type=float, help="noise-training lambda")
    p.add_argument("--seed", type=int, help="seed of every random choice")
    add_search_options(p)
    p.add_argument("--no-baseline", dest="baseline", action="store_false", default=None,
                   help="skip the random-init comparison search")
    p.add_argument("--epochs", type=int, nargs=4, metavar=("FLOAT", "QAT", "NOISE", "RETRAIN"),
                   help="epochs per training stage")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 (default) is fastest for the small default "
                   "networks, 0 keeps torch's default (use it for ResNets)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the configuration from the options and run the pipeline."""
    from agn.pipeline import PipelineConfig, run_pipeline

    over = load_yaml(args.config) if args.config else {}
    keys = ("dataset", "model", "catalog", "lam", "seed", "pop_size", "n_gen", "init",
            "baseline", "epochs", "candidate_epochs", "candidate_batches")
    over.update({k: getattr(args, k) for k in keys if getattr(args, k) is not None})
    if args.data_dir:
        over["data_args"] = {**over.get("data_args", {}), "root": args.data_dir}
    cfg = PipelineConfig.quick(**over) if args.quick else PipelineConfig(**over)
    run_pipeline(args.run_dir, cfg, workers=args.workers, scheduler=args.scheduler,
                 threads=args.threads)
    print(f"report: {args.run_dir / 'report.md'}")
    return 0


def load_yaml(path: Path) -> dict:
    """PipelineConfig fields from a YAML file, checked against the known field names."""
    import dataclasses

    import yaml

    from agn.pipeline import PipelineConfig

    if not path.is_file():
        raise SystemExit(f"agn pipeline: config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(data) - known)
    if not isinstance(data, dict) or unknown:
        raise SystemExit(f"agn pipeline: {path}: unknown fields {unknown}; known fields: "
                         f"{', '.join(sorted(known))}")
    return data
