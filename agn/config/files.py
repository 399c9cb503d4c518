"""Configuration documents: the ``configs/`` folder, YAML/JSON reading with one-line errors,
migration of older versions, and the documents a run directory records."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from agn.config.schema import PipelineConfig, TrainConfig, deep_merge
from agn.config.typed import ConfigError
from agn.config.versions import CONFIG_VERSION, migrate

__all__ = ["CONFIGS_DIR", "Source", "config_path", "document", "load_config",
           "load_pipeline_config", "read_config_file", "shipped_configs"]

#: The repository's ``configs/`` folder (beside the ``agn`` package: a checkout or an editable
#: install); ``agn train -c NAME`` and ``agn pipeline --config NAME`` look NAME up here.
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"

Source = str | os.PathLike[str] | dict[str, Any]


def shipped_configs() -> list[str]:
    """Names of the configurations in :data:`CONFIGS_DIR` (without ``.yaml``)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def config_path(source: str | os.PathLike[str]) -> Path:
    """The file ``source`` names: a path, else the name of a file in :data:`CONFIGS_DIR`."""
    path = Path(source)
    if path.is_file():
        return path
    named = CONFIGS_DIR / f"{source}.yaml"
    if named.is_file():
        return named
    if path.suffix in (".yaml", ".yml", ".json") or len(path.parts) > 1:
        raise ConfigError("", f"config file {path} does not exist")
    raise ConfigError("", f"config {str(source)!r}: no such file and no shipped config of that "
                      f"name; shipped: {', '.join(shipped_configs())}")


def read_config_file(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a YAML (or JSON) configuration file holds; one-line ConfigError otherwise."""
    path = config_path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: expected a mapping of configuration fields, got "
                          f"{data!r} ({type(data).__name__})")
    return data


def _data(source: Source) -> tuple[str, dict[str, Any]]:
    if isinstance(source, dict):
        return "", source
    return str(config_path(source)), read_config_file(source)


def load_pipeline_config(sources: Iterable[Source] = (),
                         overrides: dict[str, Any] | None = None,
                         base: dict[str, Any] | None = None) -> PipelineConfig:
    """A pipeline configuration: the defaults, then ``base`` (e.g. the ``--quick`` budget), then
    each source (a file, a shipped config name, or plain data of any version) in order, then
    ``overrides`` (current-version data); every field type-checked.

    Raises:
        ConfigError: naming the file, the field, the bad value and what was expected.
    """
    merged = dict(base or {})
    for source in sources:
        name, data = _data(source)
        try:
            merged = deep_merge(merged, migrate(data))
        except ConfigError as exc:
            raise _in(name, exc) from None
    merged = deep_merge(merged, overrides or {})
    try:
        return PipelineConfig.from_dict(merged)
    except ConfigError as exc:
        files = [str(s) for s in sources if not isinstance(s, dict)]
        if files and overrides:
            files[-1] += " with the options given"
        raise _in(", ".join(files), exc) from None


def load_config(source: TrainConfig | Source) -> TrainConfig:
    """A training configuration from itself, plain data or a file (a pipeline configuration's
    ``train`` block, or an older flat training configuration)."""
    if isinstance(source, TrainConfig):
        return source
    return load_pipeline_config([source]).train


def document(cfg: PipelineConfig | TrainConfig) -> dict[str, Any]:
    """The versioned plain data a run directory records (``pipeline.json``'s ``config``, a
    stage's ``config.yaml``: a training configuration is a pipeline document's ``train``)."""
    if isinstance(cfg, TrainConfig):
        return {"version": CONFIG_VERSION, "train": cfg.to_dict()}
    return {"version": CONFIG_VERSION, **cfg.to_dict()}


def _in(name: str, exc: ConfigError) -> ConfigError:
    return ConfigError(f"{name}: {exc.field}" if name and exc.field else name or exc.field,
                       exc.problem)
