"""Typed, validated run configuration (see :mod:`mscm.config.schema`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .loader import ConfigError, apply_overrides, flatten, from_dict, has_dotted, read_yaml, to_dict
from .schema import (
    AugmentConfig,
    DataConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    SyntheticConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "ScheduleConfig",
    "SyntheticConfig",
    "TrackingConfig",
    "TrainConfig",
    "apply_overrides",
    "builtin_configs",
    "dump_yaml",
    "flatten",
    "from_dict",
    "has_dotted",
    "load_run_config",
    "to_dict",
]


def builtin_configs() -> list[str]:
    """Names of the recipes shipped in ``mscm/configs`` (``sysu``, ``regdb``, ``llcm``, ``smoke``)."""
    return sorted(p.name[:-5] for p in resources.files("mscm.configs").iterdir() if p.name.endswith(".yaml"))


def load_run_config(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load a run config from a YAML file or a built-in recipe name, then apply dotted overrides.

    Keys absent from the file keep the schema defaults (the authors' SYSU-MM01 recipe).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        source, data = str(path), read_yaml(path)
    else:
        name = str(name_or_path)
        ref = resources.files("mscm.configs").joinpath(f"{name}.yaml")
        if not ref.is_file():
            raise ConfigError(name, "", f"no such config file or built-in recipe (built-in: {builtin_configs()})")
        source, data = f"<builtin {name}.yaml>", yaml.safe_load(ref.read_text()) or {}
    cfg = from_dict(RunConfig, data, source=source)
    if overrides:
        cfg = apply_overrides(cfg, overrides, source=f"{source} + overrides")
    return cfg


def dump_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML (logged as an artifact; loads back to an equal config, except that a
    URI's password reads ``***``: passwords come from the environment, mscm.redact)."""
    from ..redact import redact_values

    return yaml.safe_dump(redact_values(to_dict(cfg)), sort_keys=False)
