"""One typed, versioned configuration for ``agn train`` and ``agn pipeline``.

:class:`PipelineConfig` composes :class:`TrainConfig` (per-stage :class:`StageConfig` blocks and
:class:`NoiseConfig`), :class:`MatchConfig` and :class:`SearchSettings`. Files carry a
``version``; older data migrates (:func:`migrate`). :func:`check_train` / :func:`check_pipeline`
resolve catalogs, models, datasets and data directories before any stage runs.
"""
from agn.config.check import check_pipeline, check_train
from agn.config.files import (
                              CONFIGS_DIR,
                              config_path,
                              document,
                              load_config,
                              load_pipeline_config,
                              read_config_file,
                              shipped_configs,
)
from agn.config.schema import (
                              TRAIN_STAGES,
                              MatchConfig,
                              NoiseConfig,
                              PipelineConfig,
                              SearchSettings,
                              StageConfig,
                              TrainConfig,
                              deep_merge,
                              epochs_data,
)
from agn.config.typed import ConfigError, build
from agn.config.versions import CONFIG_VERSION, migrate

__all__ = [
                              "CONFIGS_DIR",
                              "CONFIG_VERSION",
                              "TRAIN_STAGES",
                              "ConfigError",
                              "MatchConfig",
                              "NoiseConfig",
                              "PipelineConfig",
                              "SearchSettings",
                              "StageConfig",
                              "TrainConfig",
                              "build",
                              "check_pipeline",
                              "check_train",
                              "config_path",
                              "deep_merge",
                              "document",
                              "epochs_data",
                              "load_config",
                              "load_pipeline_config",
                              "migrate",
                              "read_config_file",
                              "shipped_configs",
]
