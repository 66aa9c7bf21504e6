"""Validated configuration: dataclasses filled from YAML / dicts, unknown keys rejected with a clear message.

The reference's YAML keys are accepted as aliases (``backbone_type``, ``resnet_type``, ...), so its configs load
unchanged. ``reference_compat`` selects the reference numerics for every switch left unset. :mod:`.schema` holds the
sections and their checks, :mod:`.coerce` turns mappings into them, :mod:`.loading` reads files and overrides.
"""

from hap3d.config.coerce import from_dict, to_dict
from hap3d.config.loading import (
    REFERENCE_IGNORED,
    REFERENCE_KEYS,
    SHIPPED_CONFIGS,
    apply_overrides,
    load_config,
    load_yaml,
    parse_override,
    resolve_config_path,
    shipped_configs,
)
from hap3d.config.schema import (
    BACKBONE_NAMES,
    LOSS_NAMES,
    REFERENCE_BACKBONE_NAMES,
    Config,
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    with_absolute_paths,
)

__all__ = [
    "BACKBONE_NAMES", "LOSS_NAMES", "REFERENCE_BACKBONE_NAMES", "REFERENCE_IGNORED", "REFERENCE_KEYS",
    "SHIPPED_CONFIGS", "Config", "ConfigError", "DataConfig", "EvalConfig", "ModelConfig", "TrainConfig",
    "apply_overrides", "from_dict", "load_config", "load_yaml", "parse_override", "resolve_config_path",
    "shipped_configs", "to_dict", "with_absolute_paths",
]
