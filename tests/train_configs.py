"""Tiny run configs for the Ray Train / Tune tests: the smoke recipe shrunk so an epoch takes seconds."""

from __future__ import annotations

from typing import Any

from mscm.config import RunConfig, load_run_config

# A loss.ce_weight that makes the loss overflow at step 1: ce_weight x any cross-entropy above 1.2 (at step 1,
# ln C >= 2.4) exceeds float32's largest value, 3.4e38. Deterministic errors in tests use it.
OVERFLOW = 3.0e38

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
    values.update(dotted(overrides))
    return load_run_config("smoke", values)


def dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword overrides as config keys: '__' stands for '.', which a Python name cannot hold."""
    return {k.replace("__", "."): v for k, v in overrides.items()}


# Epochs of a few seconds, for tests that must act between two epochs (interrupts, outages).
SLOWER: dict[str, Any] = {"data.iterations_per_epoch": 8}


def tiny_space_overrides(**extra: Any) -> dict[str, Any]:
    """TINY as a search space's overrides: no schedule or tracking keys (the budget and flags set them)."""
    overrides = {k: v for k, v in TINY.items() if not k.startswith(("schedule.", "tracking."))}
    overrides.update({"schedule.warmup_epochs": 0, "schedule.milestones": [], "eval.trials": 1})
    overrides.update(extra)
    return overrides


def one_knob_space(
    path,
    *,
    epochs: int,
    trials: int = 1,
    overrides: dict | None = None,
    sampler: str = "random",
    seed: int = 0,
    **budget: Any,
) -> str:
    """A search space file of ``trials`` tiny trials over the QCT margin alone, with no scheduler."""
    import yaml

    space = {
        "base": "smoke",
        "overrides": tiny_space_overrides(**(overrides or {})),
        "parameters": {"loss.qct_margin": {"type": "float", "low": 0.3, "high": 1.2}},
        "objective": {"metric": "mAP", "direction": "maximize"},
        "budget": {"trials": trials, "epochs": epochs, "scheduler": "none", **budget},
        "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0},
        "sampler": {"name": sampler, "seed": seed},
    }
    path.write_text(yaml.safe_dump(space))
    return str(path)


def tune_command(space: str, name: str, *more: str) -> list[str]:
    """``mscm tune`` as a subprocess argv, in this interpreter."""
    import sys

    return [sys.executable, "-m", "mscm", "tune", "--space", space, "--name", name, *more]
