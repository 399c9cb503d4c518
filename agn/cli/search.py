"""``agn search``: NSGA-II over a run directory's integer network, scored bit-exactly."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``search`` subcommand."""
    p = subparsers.add_parser(
        "search", help="NSGA-II Pareto front of energy against accuracy",
        description="Search per-layer multipliers for the integer network in RUN_DIR/search "
        "(written by 'agn pipeline' up to its export_search stage), or in RUN_DIR/network.json "
        "of a directory agn.write_run wrote (scored on its integer_val.npz), seeded by RUN_DIR/"
        "assignment.json ('agn match'). Writes pareto.csv/.json/.png and "
        "chosen_assignment.json; a killed search resumes from its last generation.")
    p.add_argument("--run-dir", type=Path, required=True, help="run directory")
    add_search_options(p)
    p.add_argument("--seed", type=int, help="search seed")
    p.add_argument("--catalog", help="multiplier catalog of a write_run directory (default: "
                   "the one its assignment.json was matched over); a pipeline run searches "
                   "its own")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=None,
                   help="also run the random-init search for comparison")
    p.add_argument("--val", type=int, dest="val_samples", metavar="N",
                   help="validation images per candidate (0 = all)")
    p.add_argument("--max-loss", type=float, dest="max_loss",
                   help="accuracy the chosen point may lose against exact (fraction)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per scorer (0 = torch default)")
    p.set_defaults(func=run)


def add_search_options(p: argparse.ArgumentParser) -> None:
    """The NSGA-II options ``agn search`` and ``agn pipeline`` share (``search`` fields)."""
    p.add_argument("--pop", type=int, dest="pop_size", help="NSGA-II population")
    p.add_argument("--gen", type=int, dest="n_gen", help="NSGA-II generations")
    p.add_argument("--init", choices=["seeded", "random"], help="NSGA-II initial population")
    p.add_argument("--retrain-epochs", type=int, dest="candidate_epochs", metavar="N",
                   help="retrain every candidate this many epochs before scoring it (MARLIN's "
                   "protocol: 1; default 0 = score the noise-trained weights)")
    p.add_argument("--retrain-batches", type=int, dest="candidate_batches", metavar="N",
                   help="training batches per such epoch (default 0 = all)")
    p.add_argument("--cache-mb", type=float, metavar="MB",
                   help="prefix activations each scorer keeps between candidates, in MiB "
                   "(search.cache_bytes; default 1024, 0 = no cache; results do not change)")
    p.add_argument("--retrain-points", type=int, dest="retrain_points", metavar="N",
                   help="after the search, retrain N front points and the error-model "
                   "assignment briefly and deploy the cheapest within max_loss (default 0 = off)")
    p.add_argument("--granularity", choices=["layer", "filter", "kernel"],
                   help="one multiplier per layer (default), per group of --group output "
                   "channels (filter) or per block of --group output x --in-group input channels "
                   "(kernel): three genes per layer over the groups (blocks) ranked by the error "
                   "model's predicted sensitivity")
    p.add_argument("--group", type=int, help="output channels per group at filter and kernel "
                   "granularity (default 1)")
    p.add_argument("--in-group", type=int, dest="in_group", help="input channels per block at "
                   "kernel granularity (default 1)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, help="score search candidates on a local Dask "
                       "cluster of N workers")
    group.add_argument("--scheduler", help="score search candidates on an existing Dask "
                       "scheduler (tcp://host:port)")


#: ``agn search`` options -> configuration fields (dotted paths).
OPTION_FIELDS = {"seed": "train.seed", **{k: f"search.{k}" for k in (
    "pop_size", "n_gen", "init", "baseline", "max_loss", "candidate_epochs",
    "candidate_batches", "val_samples", "retrain_points", "granularity", "group", "in_group")}}


def cache_data(args: argparse.Namespace) -> dict:
    """``--cache-mb`` as configuration data (``search.cache_bytes``), or nothing."""
    if args.cache_mb is None:
        return {}
    return {"search": {"cache_bytes": round(args.cache_mb * 2**20)}}


def run(args: argparse.Namespace) -> int:
    """Run the search stage of a run directory with the given overrides."""
    from agn.pipeline.stages import search_stage
    from agn.threads import torch_threads

    ctx = context(args)
    with torch_threads(args.threads):
        summary = search_stage(ctx)
    print(json.dumps(summary, indent=2))
    return 0


def context(args: argparse.Namespace):
    """The search's Context: a pipeline run's (its recorded configuration, overridden by the
    options), or a write_run directory's (the configuration's defaults and the options)."""
    from agn.cli.pipeline import option_data
    from agn.config import deep_merge, document, load_pipeline_config
    from agn.pipeline.context import Context, UserRunContext
    from agn.run import STATUS_FILE, pipeline_config
    from agn.userrun import SPLIT_FILES

    run_dir: Path = args.run_dir
    over = deep_merge(option_data(args, OPTION_FIELDS), cache_data(args))
    if (run_dir / STATUS_FILE).exists() or not (run_dir / SPLIT_FILES["val"]).exists():
        if args.catalog is not None:
            raise ValueError(f"--catalog: a pipeline run searches its own catalog; "
                             f"{run_dir / STATUS_FILE} records it")
        cfg = load_pipeline_config([document(pipeline_config(run_dir))], over)
        return Context(run_dir, cfg, True, args.workers, args.scheduler, args.threads)
    missing = [f for f in ("network.json", "sigmas.json", "assignment.json")
               if not (run_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: a write_run directory needs {', '.join(missing)} "
                                f"for the search (assignment.json: run 'agn match --run-dir "
                                f"{run_dir}' first)")
    catalog = args.catalog or _matched_catalog(run_dir)
    cfg = load_pipeline_config([], deep_merge(over, {"train": {"catalog": catalog}}
                                              if catalog else {}))
    if cfg.search.candidate_epochs:
        raise ValueError(f"--retrain-epochs: retraining candidates needs the model and training "
                         f"data of an 'agn pipeline' run; {run_dir} was written by "
                         f"agn.write_run")
    return UserRunContext(run_dir, cfg, True, args.workers, args.scheduler, args.threads)


def _matched_catalog(run_dir: Path) -> str | None:
    import hwlib
    from agn.run import ASSIGNMENT_FILE

    return hwlib.read_assignment(run_dir / ASSIGNMENT_FILE).catalog
