"""``agn pipeline``: every stage in one resumable run directory, ending in report.md."""
from __future__ import annotations

import argparse
from pathlib import Path

from agn.cli.operating_points import add_points_options, settings
from agn.cli.search import add_search_options, cache_data


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
    p.add_argument("--config", help="YAML configuration file, or the name of one in the "
                   "repository's configs/ folder, e.g. marlin_mnist (options given on the "
                   "command line override it)")
    p.add_argument("--quick", action="store_true",
                   help="tiny budget for smoke tests (about a minute)")
    p.add_argument("--dataset", help="digits (default), mnist, fashion-mnist, cifar10")
    p.add_argument("--datamodule", help="an import string package.module:Class naming your own "
                   "LightningDataModule (batches (x, y), an integer num_classes attribute; "
                   "optional per-channel mean and std); replaces --dataset (its arguments: "
                   "train.datamodule_args in --config)")
    p.add_argument("--data-dir", help="directory of the dataset files (mnist, fashion-mnist, "
                   "cifar10)")
    p.add_argument("--model", help="lenet5 (default), marlin_mnist, resnet8, ..., or an "
                   "import string package.module:callable building your own plain PyTorch model "
                   "(keywords in_channels, input_size, num_classes)")
    p.add_argument("--catalog", help="multiplier catalog, e.g. 'evo:mul8s_*' (default), "
                   "'marlin:*'")
    p.add_argument("--lam", type=float, help="noise-training lambda")
    p.add_argument("--per-channel-sigmas", dest="per_channel", action="store_true", default=None,
                   help="learn one noise sigma per output channel (train.noise.per_channel); "
                   "filter matching then takes each channel's tolerance from its own sigma")
    p.add_argument("--seed", type=int, help="seed of every random choice")
    add_search_options(p)
    p.add_argument("--no-baseline", dest="baseline", action="store_false", default=None,
                   help="skip the random-init comparison search")
    p.add_argument("--epochs", type=int, nargs=4, metavar=("FLOAT", "QAT", "NOISE", "RETRAIN"),
                   help="epochs per training stage")
    p.add_argument("--accelerator", help="Lightning accelerator of the training stages: auto "
                   "(default), cpu, gpu, cuda, mps")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 (default) is fastest for the small default "
                   "networks, 0 keeps torch's default (use it for ResNets)")
    add_points_options(p, "--operating-points")
    p.set_defaults(func=run)


#: ``agn pipeline`` options -> configuration fields (dotted paths).
OPTION_FIELDS = {"dataset": "train.data", "model": "train.model", "catalog": "train.catalog",
                 "lam": "train.noise.lam", "per_channel": "train.noise.per_channel",
                 "seed": "train.seed", "pop_size": "search.pop_size",
                 "n_gen": "search.n_gen", "init": "search.init", "baseline": "search.baseline",
                 "candidate_epochs": "search.candidate_epochs",
                 "candidate_batches": "search.candidate_batches",
                 "retrain_points": "search.retrain_points",
                 "granularity": "search.granularity", "group": "search.group",
                 "in_group": "search.in_group",
                 "data_dir": "train.data_args.root", "accelerator": "train.accelerator",
                 "datamodule": "train.datamodule"}


def option_data(args: argparse.Namespace, fields: dict[str, str]) -> dict:
    """The options given on the command line as plain configuration data."""
    from agn.config import deep_merge

    data: dict = {}
    for option, path in fields.items():
        value = getattr(args, option, None)
        if value is not None:
            for key in reversed(path.split(".")):
                value = {key: value}
            data = deep_merge(data, value)
    return data


def run(args: argparse.Namespace) -> int:
    """Build and check the configuration (file, then options), then run the pipeline."""
    from agn.config import deep_merge, epochs_data, load_pipeline_config
    from agn.config.schema import QUICK
    from agn.pipeline import run_pipeline

    over = deep_merge(option_data(args, OPTION_FIELDS), cache_data(args))
    if args.epochs is not None:
        over = deep_merge(over, epochs_data(args.epochs))
    cfg = load_pipeline_config([args.config] if args.config else [], over,
                               base=QUICK if args.quick else None)
    extra = ()
    if args.points is not None:
        from agn.operating_points.stage import points_stage

        extra = (points_stage(settings(args)),)
    run_pipeline(args.run_dir, cfg, workers=args.workers, scheduler=args.scheduler,
                 threads=args.threads, extra=extra)
    print(f"report: {args.run_dir / 'report.md'}")
    return 0
