"""``agn train``: run training stages from YAML configs with dotted command-line overrides.

Example::

    agn train --config digits_lenet5 --run-dir runs/digits --stage all --noise.lam 0.5

``--config`` takes a YAML file or the name of a config shipped in ``agn/configs`` (repeatable;
later files win), then ``--<key>[.<subkey>] VALUE`` overrides any field of
:class:`agn.training.TrainConfig` (values are parsed as YAML: ``--qat.milestones [5,8]``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

STAGES = ("float", "qat", "noise", "retrain")
DATA_KEYS = ("root", "batch_size", "download", "shift", "limit_train", "val_fraction")


def _leaf_keys() -> list[str]:
    from agn.training import TrainConfig

    keys = []
    for f in dataclasses.fields(TrainConfig):
        if dataclasses.is_dataclass(f.default):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(f.default)]
        else:
            keys.append(f.name)
    return keys + [f"data_args.{k}" for k in DATA_KEYS]


def shipped_configs() -> list[str]:
    """Names of the configs in ``agn/configs`` (without ``.yaml``)."""
    return sorted(p.name[:-5] for p in resources.files("agn").joinpath("configs").iterdir()
                  if p.name.endswith(".yaml"))


def _read_yaml(source: str) -> dict[str, Any]:
    path = Path(source)
    if not path.is_file():
        shipped = resources.files("agn").joinpath("configs", f"{source}.yaml")
        if not shipped.is_file():
            raise FileNotFoundError(f"config {source!r}: no such file and no shipped config of "
                                    f"that name; shipped: {', '.join(shipped_configs())}")
        text = shipped.read_text()
    else:
        text = path.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {source!r}: expected a mapping, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(configs: list[str], overrides: dict[str, Any]):
    """TrainConfig from defaults, YAML files (in order) and dotted overrides."""
    from agn.training import TrainConfig

    data = TrainConfig().to_dict()
    for c in configs:
        data = _merge(data, _read_yaml(c))
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return TrainConfig.from_dict(data)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``agn train``."""
    p = subparsers.add_parser(
        "train", help="train float / QAT / learned-noise / approximate stages",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", action="append", default=[], metavar="YAML",
                   help="config file or shipped config name (repeatable)")
    p.add_argument("--run-dir", help="run directory (checkpoints, logs, sigmas.json)")
    p.add_argument("--stage", default="all", choices=(*STAGES, "all"),
                   help="stage to run; 'all' runs float, qat and noise (default)")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    group = p.add_argument_group("config fields (values parsed as YAML)")
    for key in _leaf_keys():
        group.add_argument(f"--{key}", dest=f"set:{key}", type=yaml.safe_load,
                           default=argparse.SUPPRESS, metavar="VALUE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``agn train``."""
    overrides = {k[4:]: v for k, v in vars(args).items() if k.startswith("set:")}
    cfg = build_config(args.config, overrides)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    if not args.run_dir:
        print("agn train: --run-dir is required", file=sys.stderr)
        return 2
    from agn.training import run_stages

    stages = ("float", "qat", "noise") if args.stage == "all" else (args.stage,)
    for res in run_stages(args.run_dir, cfg, stages):
        print(json.dumps(dataclasses.asdict(res)))
    return 0
