"""Experiment configs: YAML files validated into typed dataclasses."""
from tfadv.config.loader import ConfigError, from_dict, load_config, parse_override, save_config, to_dict
from tfadv.config.schema import (
    ATTACK_NAMES,
    METHOD_KINDS,
    AttackConfig,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ExportConfig,
    LandscapeConfig,
    MethodConfig,
    ModelConfig,
    TrainConfig,
    TuneConfig,
)

__all__ = [
    "ATTACK_NAMES", "METHOD_KINDS", "AttackConfig", "ConfigError", "DataConfig", "EvalConfig",
    "ExperimentConfig", "ExportConfig", "LandscapeConfig", "MethodConfig", "ModelConfig",
    "TrainConfig", "TuneConfig", "from_dict", "load_config", "parse_override", "save_config",
    "to_dict",
]

