"""Preflight: everything a command can check on the driver before Ray starts or anything is written.

``train`` and ``tune`` check the dataset (layout, split and index files, identity coverage, the
header of every image), the pretrained weights, the Ray results folder, the MLflow store and (for a
search) the Optuna storage, and only then create the stores. ``evaluate`` checks its checkpoints and
dataset; ``promote`` that its MLflow store exists. A failure raises an :class:`~mscm.errors.MscmError`
and leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .dataset import DatasetCheck, check_dataset, print_warnings
from .stores import (
    check_artifact_location,
    check_optuna_url,
    check_storage_path,
    check_tracking_uri,
    create_stores,
)

if TYPE_CHECKING:
    from ..config import RunConfig


@dataclass
class PreflightReport:
    dataset: DatasetCheck | None
    seconds: float
    warnings: list[str] = field(default_factory=list)


def check_pretrained(cfg: RunConfig) -> None:
    """Open the ImageNet weights with ``weights_only=True`` and match their keys to the backbone."""
    if cfg.model.pretrained:
        from ..model.pretrained import read_resnet_state

        read_resnet_state(cfg.model.pretrained, cfg.model.backbone)


def preflight_run(
    cfg: RunConfig, *, storage_path: str, tracking_uri: str, optuna_url: str | None = None, progress: bool = True
) -> PreflightReport:
    """Check a training run (or a search's base config) whole, then create its stores."""
    start = time.perf_counter()
    folder = check_storage_path(storage_path)
    store = check_tracking_uri(tracking_uri, artifact_location=cfg.tracking.artifact_location)
    artifacts = check_artifact_location(cfg.tracking.artifact_location)
    optuna_file = check_optuna_url(optuna_url) if optuna_url else None
    check_pretrained(cfg)
    data = check_dataset(cfg.data, progress=progress)
    create_stores(
        [folder, store.artifact_dir, artifacts], [store.path if store.kind == "sqlite" else None, optuna_file]
    )
    print_warnings(data.warnings)
    return PreflightReport(data, time.perf_counter() - start, data.warnings)


def preflight_checkpoints(checkpoints: Sequence[str]) -> list[RunConfig]:
    """Each checkpoint loads with ``weights_only=True``, is an mscm checkpoint, and its config is valid."""
    from ..checkpoint import config_of, load_model_payload

    return [config_of(load_model_payload(c), str(c)) for c in checkpoints]


__all__ = [
    "PreflightReport",
    "preflight_run",
    "preflight_checkpoints",
    "check_pretrained",
    "check_dataset",
    "check_tracking_uri",
    "check_optuna_url",
    "check_storage_path",
]
