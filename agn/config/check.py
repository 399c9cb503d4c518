"""Validation of a configuration against the world before any stage runs: the catalog resolved
through hwlib, the model and dataset registries (or import strings), the data module's keyword
arguments and its data directory."""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from agn.config.schema import PipelineConfig, TrainConfig
from agn.config.typed import ConfigError, convert, join
from agn.data import DATAMODULES, DataFileError, build_datamodule
from agn.data.generic import build_user_datamodule
from agn.models import MODELS, resolve_builder
from hwlib.catalogs import Catalog

__all__ = ["check_pipeline", "check_train"]

_SET_BY_CONFIG = {"seed"}  # data-module arguments the configuration sets from its own fields


def check_train(cfg: TrainConfig, where: str = "") -> None:
    """Resolve everything ``cfg`` names (catalog, model, dataset, data module arguments and data
    directory; a user's data module is imported and built); ConfigError naming the field, the
    bad value and what was expected."""
    if cfg.catalog is not None:
        try:
            Catalog.build(cfg.catalog)  # the one expansion the stages use later
        except ValueError as exc:
            raise ConfigError(join(where, "catalog"), f"{exc}") from None
    try:
        resolve_builder(cfg.model)
    except ValueError as exc:
        raise ConfigError(join(where, "model"), f"expected one of {', '.join(sorted(MODELS))} "
                          f"or an import string 'package.module:callable': {exc}") from None
    if cfg.datamodule is not None:
        try:
            build_user_datamodule(cfg.datamodule, cfg.datamodule_args)
        except ValueError as exc:
            raise ConfigError(join(where, "datamodule"), str(exc)) from None
        return
    if cfg.data not in DATAMODULES:
        raise ConfigError(join(where, "data"), f"expected one of {', '.join(DATAMODULES)}, "
                          f"got {cfg.data!r}")
    _check_data_args(cfg, join(where, "data_args"))
    try:
        dm = build_datamodule(cfg.data, seed=cfg.seed, **cfg.data_args)
        dm.check_files()
    except DataFileError as exc:
        raise ConfigError(join(where, "data_args.root"), str(exc)) from None
    except ValueError as exc:
        raise ConfigError(join(where, "data_args"), str(exc)) from None


def check_pipeline(cfg: PipelineConfig) -> None:
    """:func:`check_train` of the pipeline's training block, which must name a catalog (the
    search and matching blocks are checked when they are built)."""
    if cfg.train.catalog is None:
        raise ConfigError("train.catalog", "expected a multiplier catalog spec such as "
                          "'marlin:*' (the pipeline matches and searches over it), got None")
    if cfg.train.assignment is not None:
        raise ConfigError("train.assignment", f"expected null (the pipeline retrains its chosen "
                          f"assignment), got {cfg.train.assignment!r}")
    check_train(cfg.train, "train")


def _check_data_args(cfg: TrainConfig, where: str) -> None:
    params = _datamodule_params(cfg.data)
    for key, value in cfg.data_args.items():
        if key not in params:
            raise ConfigError(join(where, key), f"unknown argument of the {cfg.data!r} data "
                              f"module; expected one of {', '.join(sorted(params))}")
        tp, _ = params[key]
        convert(tp, value, join(where, key))
    missing = [k for k, (_, required) in params.items() if required and k not in cfg.data_args]
    if missing:
        raise ConfigError(join(where, missing[0]), f"required by dataset {cfg.data!r} (e.g. the "
                          f"directory of its files), not given")


@functools.cache
def _datamodule_params(name: str) -> dict[str, tuple[Any, bool]]:
    """{argument: (type, required)} of a registered data module's constructor, following
    ``**kwargs`` through its base classes; arguments a ``partial`` binds are left out."""
    factory = DATAMODULES[name]
    bound = set(getattr(factory, "keywords", {}) or {})
    cls: Any = getattr(factory, "func", factory)
    params: dict[str, tuple[Any, bool]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        hints = typing.get_type_hints(init)
        more = False
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.name not in params and p.name not in bound | _SET_BY_CONFIG:
                params[p.name] = (hints.get(p.name, Any), p.default is p.empty)
        if not more:
            break
    return params
