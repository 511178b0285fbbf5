"""A small untrained mscm model logged to a real MLflow store, for the tests of the logged model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from train_configs import tiny_config


@dataclass(frozen=True)
class Logged:
    tracking_uri: str
    model_uri: str
    run_id: str
    checkpoint: Path
    cfg: Any


def log_tiny_model(tmp: Path, experiment: str, *, seed: int = 0, num_classes: int = 18) -> Logged:
    """A seeded network's checkpoint (with an optimiser-state file beside it, which must stay out of the
    model), logged as the model of a new run in the SQLite store of ``tiny_config(tmp)``."""
    import mlflow

    from mscm.checkpoint import save_checkpoint
    from mscm.model import build_model
    from mscm.tracking.model_logging import log_embedding_model

    cfg = tiny_config(tmp)
    torch.manual_seed(seed)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), num_classes, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp / "ckpt", cfg=cfg, num_classes=num_classes, model=model, epoch=2, metrics={"mAP": 0.5})
    (tmp / "ckpt" / "train_state.pt").write_bytes(b"optimiser state: never in the model")
    uri = cfg.tracking.tracking_uri
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment(experiment, artifact_location=str(tmp / "artifacts")))
    model_uri = log_embedding_model(uri, run.info.run_id, ckpt)
    client.set_terminated(run.info.run_id)
    return Logged(uri, model_uri, run.info.run_id, ckpt, cfg)
