"""Lightning training of every stage (float, QAT, learned noise, approximate retraining)."""
from agn.config import ConfigError, NoiseConfig, StageConfig, TrainConfig, load_config
from agn.run import StageError, build_stage_model, load_stage_model
from agn.training.finetune import finetune
from agn.training.module import AGNModule, Stage
from agn.training.stages import StageResult, run_stage, run_stages

__all__ = [
    "AGNModule", "ConfigError", "NoiseConfig", "Stage", "StageConfig", "StageError", "StageResult",
    "TrainConfig", "build_stage_model", "finetune", "load_config", "load_stage_model", "run_stage",
    "run_stages",
]
