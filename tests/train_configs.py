"""Tiny run configs for the Ray Train / Tune tests: the smoke recipe shrunk so an epoch takes seconds."""

from __future__ import annotations

from typing import Any

from mscm.config import RunConfig, load_run_config

# 64x32 images: ALB embedding (64/16)*(32/16) = 8, so 2 heads of 4.
TINY: dict[str, Any] = {
    "data.height": 64,
    "data.width": 32,
    "data.synthetic.height": 64,
    "data.synthetic.width": 32,
    "data.synthetic.identities": 24,
    "data.identities_per_batch": 4,
    "data.instances_per_identity": 2,
    "data.iterations_per_epoch": 3,
    "model.alb_heads": 2,
    "eval.trials": 2,
    "schedule.epochs": 3,
    "schedule.warmup_epochs": 0,
    "schedule.milestones": [],
    "tracking.system_metrics": False,
}


def tiny_config(tmp_path, **overrides: Any) -> RunConfig:
    """The tiny smoke config with its MLflow store and Ray storage under ``tmp_path``."""
    values = dict(TINY)
    values.update(
        {
            "tracking.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "train.storage_path": str(tmp_path / "ray_results"),
        }
    )
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_run_config("smoke", values)
