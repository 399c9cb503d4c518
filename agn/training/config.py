"""The training configuration's types, defined in :mod:`agn.config` (the one configuration of
``agn train`` and ``agn pipeline``) and re-exported here for ``agn.training`` users."""
from agn.config import ConfigError, NoiseConfig, StageConfig, TrainConfig, load_config

__all__ = ["ConfigError", "NoiseConfig", "StageConfig", "TrainConfig", "load_config"]
