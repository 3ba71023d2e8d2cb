"""The run configuration: every setting declared once, read from TOML, the command line or a
run's config.json (docs/reference.md lists them all, generated from the declarations)."""

from seqbench.config.declare import Declared, Setting, declared_settings, setting, settings_of
from seqbench.config.load import (
    COMMAND_LINE,
    config_from_record,
    load_config,
    load_plan,
    read_toml,
    setting_at,
    settings,
)
from seqbench.config.plan import Plan
from seqbench.config.run import (
    DataConfig,
    EvalConfig,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
    RunConfig,
    TrainConfig,
    default_cache_dir,
)

__all__ = [
    "COMMAND_LINE",
    "DataConfig",
    "Declared",
    "EvalConfig",
    "FinetuneConfig",
    "ModelConfig",
    "Plan",
    "PretrainConfig",
    "RunConfig",
    "Setting",
    "TrainConfig",
    "config_from_record",
    "declared_settings",
    "default_cache_dir",
    "load_config",
    "load_plan",
    "read_toml",
    "setting",
    "setting_at",
    "settings",
    "settings_of",
]
