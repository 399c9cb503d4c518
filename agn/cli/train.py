"""``agn train``: run training stages from YAML configs with dotted command-line overrides.

Example::

    agn train --config digits_lenet5 --run-dir runs/digits --stage all --noise.lam 0.5

``--config`` takes a YAML file or the name of a config in the repository's ``configs/`` folder
(repeatable; later files win); the training stages use its ``train`` block. Then
``--<key>[.<subkey>] VALUE`` overrides any field of that block
(:class:`agn.config.TrainConfig`; values are parsed as YAML: ``--qat.milestones [5,8]``; text
that is not YAML is taken as a string).
Every value is checked before anything is written.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import yaml

STAGES = ("float", "qat", "noise", "retrain")
DATA_KEYS = ("root", "batch_size", "download", "shift", "limit_train", "val_fraction")


def _leaf_keys() -> list[str]:
    from agn.config import TrainConfig

    keys = []
    for f in dataclasses.fields(TrainConfig):
        if dataclasses.is_dataclass(f.default):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(f.default)]
        elif f.name != "data_args":
            keys.append(f.name)
    return keys + [f"data_args.{k}" for k in DATA_KEYS]


def yaml_value(text: str) -> Any:
    """A command-line value parsed as YAML; text that is not valid YAML stays a string (the
    configuration's checks then name the field and the type it expects)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def build_config(configs: list[str], overrides: dict[str, Any]):
    """The TrainConfig of the defaults, the files' ``train`` blocks (in order) and the dotted
    overrides (fields of the ``train`` block)."""
    from agn.config import deep_merge, load_pipeline_config

    data: dict[str, Any] = {}
    for key, value in overrides.items():
        for part in reversed(["train", *key.split(".")]):
            value = {part: value}
        data = deep_merge(data, value)
    return load_pipeline_config(configs, data).train


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``agn train``."""
    p = subparsers.add_parser(
        "train", help="train float / QAT / learned-noise / approximate stages",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", action="append", default=[], metavar="YAML",
                   help="config file or the name of one in configs/ (repeatable)")
    p.add_argument("--run-dir", help="run directory (checkpoints, logs, sigmas.json)")
    p.add_argument("--stage", default="all", choices=(*STAGES, "all"),
                   help="stage to run; 'all' runs float, qat and noise (default)")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    group = p.add_argument_group("config fields (values parsed as YAML)")
    for key in _leaf_keys():
        group.add_argument(f"--{key}", dest=f"set:{key}", type=yaml_value,
                           default=argparse.SUPPRESS, metavar="VALUE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``agn train``."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("set:")}
    cfg = build_config(args.config, overrides)
    if args.print_config:
        from agn.config import document

        sys.stdout.write(yaml.safe_dump(document(cfg), sort_keys=False))
        return 0
    if not args.run_dir:
        raise ValueError("--run-dir is required (the run directory of the stages)")
    from agn.training import run_stages

    stages = ("float", "qat", "noise") if args.stage == "all" else (args.stage,)
    for res in run_stages(args.run_dir, cfg, stages):
        print(json.dumps(dataclasses.asdict(res)))
    return 0
