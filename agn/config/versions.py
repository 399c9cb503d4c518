"""Configuration format versions and the migrations that bring older data to the current one.

Version 1 (no ``version`` field) is what the code before the typed configuration wrote and read:
a flat pipeline configuration (``pipeline.json``'s ``config``, the YAML of ``agn pipeline
--config``: ``dataset``, ``lam``, ``epochs``, ``pop_size``, ..., an untyped ``train`` mapping)
and a flat training configuration (``config.yaml`` of a run directory, the YAML of ``agn train``:
``data``, ``noise``, ``float_stage``, ...). Version 2 nests them: ``train``, ``match``, ``search``,
``deploy_inputs``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agn.config.schema import STAGE_FIELDS, deep_merge
from agn.config.typed import ConfigError

__all__ = ["CONFIG_VERSION", "migrate"]

CONFIG_VERSION = 2

_V1_TRAIN = {"model", "data", "data_args", "datamodule", "datamodule_args", "seed", "float_stage",
             "qat", "noise_stage", "retrain", "noise", "calib_batches", "catalog", "assignment",
             "limit_train_batches", "limit_val_batches", "progress_bar", "threads", "accelerator",
             # fields added since, which a flat TrainConfig.to_dict() also holds (issue 17)
             "compensate", "round_operands", "calibration", "calib_percentile",
             "retrain_distill"}
_V1_NOISE = {"lam", "sigma_init", "sigma_max", "sigma_lr"}
_V1_MATCH = {"n_fields", "stats_samples", "scales"}
_V1_SEARCH = {"pop_size", "n_gen", "init", "baseline", "val_samples", "candidate_epochs",
              "candidate_batches", "max_loss", "uniform_points"}
_V2_BLOCKS = {"train", "match", "search", "deploy_inputs"}
_V1_ALL = _V1_TRAIN | _V1_NOISE | _V1_MATCH | _V1_SEARCH | {"dataset", "epochs"}


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Flat version-1 pipeline or training data -> nested version-2 pipeline data (version-2
    blocks pass through, so unversioned data in the new layout migrates to itself)."""
    train: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "dataset":
            train["data"] = value
        elif key in _V1_NOISE:
            train.setdefault("noise", {})[key] = value
        elif key == "epochs":
            if not isinstance(value, (list, tuple)) or len(value) != len(STAGE_FIELDS):
                raise ConfigError("epochs", f"expected {len(STAGE_FIELDS)} epoch counts (float, "
                                  f"qat, noise, retrain), got {value!r}")
            for stage, epochs in zip(STAGE_FIELDS, value):
                train.setdefault(stage, {})["epochs"] = epochs
        elif key in _V1_TRAIN:
            train[key] = value
        elif key in _V1_MATCH:
            out.setdefault("match", {})[key] = value
        elif key in _V1_SEARCH:
            out.setdefault("search", {})[key] = value
        elif key in _V2_BLOCKS:
            continue
        else:
            raise ConfigError(key, "unknown field; expected the blocks "
                              f"{', '.join(sorted(_V2_BLOCKS))} (or, without a version, a field "
                              f"of version 1: {', '.join(sorted(_V1_ALL))})")
    block = data.get("train", {})
    if isinstance(block, dict):  # v1's untyped train mapping yields to the flat fields above
        train = deep_merge(block, train)
    elif "train" in data:
        train = block
    for name in ("match", "search"):
        if isinstance(data.get(name), dict) and isinstance(out.get(name), dict):
            out[name] = deep_merge(data[name], out[name])
        elif name in data:
            out[name] = data[name]
    if "deploy_inputs" in data:
        out["deploy_inputs"] = data["deploy_inputs"]
    return {"train": train, **out} if train or "train" in data else out


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Configuration data of any known version (``version`` field, 1 when absent) as current
    data, without the ``version`` field."""
    data = dict(data)
    version = data.pop("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or \
            not 1 <= version <= CONFIG_VERSION:
        raise ConfigError("version", f"expected a configuration version 1..{CONFIG_VERSION}, "
                          f"got {version!r}")
    while version < CONFIG_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return data
