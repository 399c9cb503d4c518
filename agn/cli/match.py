"""``agn match``: sigmas.json + operand_stats.npz -> assignment.json (one multiplier per layer;
with ``--granularity filter`` one per group of output channels; with ``--granularity kernel`` one
per (output group, input group) block, from block_operands.npz)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from errormodels import (
    ASSIGNMENT_FILE,
    STATS_FILE,
    Assignment,
    ErrorCatalog,
    Method,
    Metric,
    Rule,
    load_stats,
    match,
    read_sigmas,
    write_assignment,
)
from errormodels.blocks import BLOCKS_FILE, load_block_operands, match_kernels
from errormodels.channels import match_filters
from hwlib.blocks import describe
from hwlib.errors import SpecError

DEFAULT_CATALOG = "marlin:*"
COMPENSATE = True
"""Default of ``--compensate``: the pipeline's ``match.compensate`` (agn.config imports torch,
which this command does not; a test holds the two equal)."""
GRANULARITIES = ("layer", "filter", "kernel")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``match`` subcommand."""
    p = subparsers.add_parser(
        "match", help="map each layer's learned sigma to a multiplier with the error model",
        description="Read RUN_DIR/sigmas.json and RUN_DIR/operand_stats.npz, predict every "
        "layer's output error under every catalog multiplier, choose one per layer and write "
        "RUN_DIR/assignment.json. A run without operand_stats.npz (e.g. one made by 'agn "
        "train') gets it first, collected from its noise stage.")
    p.add_argument("--run-dir", required=True, type=Path, help="run directory")
    p.add_argument("--catalog", default=None,
                   help="multiplier catalog spec, e.g. 'marlin:*', 'evo:mul8s_*' (default: the "
                   f"one the run was made for, else {DEFAULT_CATALOG!r}); another catalog than "
                   "the run's is refused for RUN_DIR/assignment.json (use --output)")
    p.add_argument("--rule", choices=[r.value for r in Rule], default=Rule.CHEAPEST.value,
                   help="cheapest within tolerance, or nearest predicted error (default: "
                   "%(default)s)")
    p.add_argument("--metric", choices=[m.value for m in Metric], default=Metric.STD.value,
                   help="predicted error compared with the tolerance (default: %(default)s)")
    p.add_argument("--method", choices=[m.value for m in Method], default=Method.CHANNEL.value,
                   help="error-model formula (default: %(default)s)")
    p.add_argument("--granularity", choices=GRANULARITIES, default="layer",
                   help="one multiplier per layer, per group of --group output channels "
                   "(filter; the per-channel error model) or per block of --group output x "
                   "--in-group input channels (kernel; the per-block error model) (default: "
                   "%(default)s)")
    p.add_argument("--group", type=int, default=1,
                   help="output channels per group at filter and kernel granularity (default: "
                   "%(default)s)")
    p.add_argument("--in-group", type=int, default=1,
                   help="input channels per block at kernel granularity (default: %(default)s)")
    p.add_argument("--samples", type=int, default=512,
                   help="training images the operand statistics see, when they are collected "
                   "(default: %(default)s)")
    p.add_argument("--fields", type=int, default=64,
                   help="receptive fields kept per layer, likewise (default: %(default)s)")
    p.add_argument("--compensate", action=argparse.BooleanOptionalAction,
                   default=COMPENSATE,
                   help="match as if each channel's mean error were folded into its bias, as "
                   "the pipeline deploys it (match.compensate; layer granularity; default: "
                   "%(default)s)")
    p.add_argument("--output", type=Path, default=None,
                   help=f"where to write the assignment (default: RUN_DIR/{ASSIGNMENT_FILE})")
    p.set_defaults(func=run)


def format_table(a: Assignment) -> str:
    """The assignment as a fixed-width text table with its energy and power source."""
    head = (f"{'layer':<20} {'sigma':>8} {'tolerance':>11} {'multiplier':<16} {'pred std':>11} "
            f"{'pred mean':>11} {'rel power':>9}")
    rows = [head, "-" * len(head)]
    for x in a.layers:
        spec = x.multiplier or f"{len(x.groups or ())} groups"
        rows.append(f"{x.name:<20} {x.sigma:>8.4f} {x.tolerance:>11.4g} {spec:<16} "
                    f"{x.predicted_std:>11.4g} {x.predicted_mean:>11.4g} {x.relative_power:>9.4f}")
        if x.groups is not None:
            rows.append(f"{'':<20} filters per multiplier: {describe(x.groups)}")
    rows.append(f"relative multiplication energy {a.energy:.4f} (rule {a.rule}, metric "
                f"{a.metric}; power: {a.power_source})")
    return "\n".join(rows)


def run_catalog(run_dir: Path) -> str | None:
    """The catalog a run directory was made for (``pipeline.json``'s, else ``config.yaml``'s), or
    None when it records none (read without torch)."""
    import yaml

    from agn.status_file import read_status, recorded_catalog

    if (run_dir / "pipeline.json").exists():
        return recorded_catalog(read_status(run_dir / "pipeline.json").get("config", {}))
    path = run_dir / "config.yaml"
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not readable YAML ({exc})") from None
        return recorded_catalog(data) if isinstance(data, dict) else None
    return None


def check_catalog(run_dir: Path, catalog: str, recorded: str | None, output: Path) -> None:
    """Refuse to overwrite a run's own assignment with one over another catalog than the run's
    (its network was trained for that catalog, and its search refuses such an assignment)."""
    own = run_dir / ASSIGNMENT_FILE
    if recorded is None or catalog == recorded or output.resolve() != own.resolve():
        return
    raise ValueError(f"{run_dir} was made for catalog {recorded!r}, not {catalog!r}: its network "
                     f"was trained and is searched for {recorded!r}, so an assignment over "
                     f"{catalog!r} in {own} would break 'agn search'; match with --catalog "
                     f"{recorded!r}, or write elsewhere with --output FILE")


def run(args: argparse.Namespace) -> int:
    """Handler of ``agn match``."""
    try:
        recorded = run_catalog(args.run_dir)
        spec = args.catalog or recorded or DEFAULT_CATALOG
        output = args.output or args.run_dir / ASSIGNMENT_FILE
        check_catalog(args.run_dir, spec, recorded, output)
        sigmas = read_sigmas(args.run_dir)
        if not (args.run_dir / STATS_FILE).exists() or (
                args.granularity == "kernel" and not (args.run_dir / BLOCKS_FILE).exists()):
            from agn.run import write_run_stats  # torch only when statistics are collected

            path = write_run_stats(args.run_dir, samples=args.samples, n_fields=args.fields)
            print(f"collected operand statistics of the noise stage ({args.samples} training "
                  f"images, {args.fields} fields per layer): {path}")
        stats = load_stats(args.run_dir)
        catalog = ErrorCatalog.build(spec)
        if args.granularity == "kernel":
            if args.rule != Rule.CHEAPEST.value:
                raise ValueError(f"--rule {args.rule}: kernel granularity matches with the "
                                 f"cheapest rule (a channel's tolerance shared over its blocks)")
            a = match_kernels(sigmas, stats, load_block_operands(args.run_dir), catalog,
                              metric=args.metric, group=args.group, in_group=args.in_group)
        elif args.granularity == "filter":
            a = match_filters(sigmas, stats, catalog, rule=args.rule, metric=args.metric,
                              group=args.group)
        else:
            a = match(sigmas, stats, catalog, rule=args.rule, metric=args.metric,
                      method=args.method, compensate=args.compensate)
        path = write_assignment(output, a)
    except (ValueError, SpecError) as exc:
        print(f"agn match: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(a))
    formula = {"filter": "per-channel fixed_field",
               "kernel": "per-block fixed_field"}.get(args.granularity, args.method)
    own = args.granularity == "filter" and any(s.channel_sigmas for s in sigmas)
    print(f"error model: {formula} formula over {len(catalog)} multipliers of "
          f"{spec!r}{'; tolerances from per-channel sigmas' if own else ''}; wrote {path}")
    return 0
