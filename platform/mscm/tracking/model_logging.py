"""The inference model of a checkpoint in MLflow: log it (mlflow.pytorch, "pt2"), and rebuild the
checkpoint from it.

The logged model is the one copy of a run's weights in MLflow. Its exported program holds every
parameter and buffer of the network (classifier included) under ``model.<name>``, and its metadata
holds the run config, the number of classes and the epoch, so :func:`checkpoint_from_model` can
rebuild the checkpoint that promotion evaluates and registers, without the optimiser state (which
stays in Ray's checkpoints).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import FORMAT, VERSION, CheckpointError, load_model, load_state_strict, save_checkpoint
from ..environ import temporary_env

INPUT_DOC = "images uint8 (B,H,W,3) RGB, modality int64 (B,) 0=visible 1=infrared"
OUTPUT_DOC = "float32 (B,D) L2-normalised"
CHECKPOINT_META = "mscm_checkpoint"  # metadata key: what rebuilds the checkpoint
WRAPPED = "model."  # EmbeddingModel keeps the network as .model
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def quiet_artifact_progress() -> contextlib.AbstractContextManager:
    """No progress bar per artifact download: one bar per small file is noise."""
    return temporary_env(_PROGRESS_ENV, "false")


def embedding_model_from_checkpoint(checkpoint_dir: str | Path):
    from ..model.inference import EmbeddingModel

    model, cfg, payload = load_model(checkpoint_dir, "cpu")
    return EmbeddingModel(model, feature=cfg.eval.feature).eval(), cfg, payload


def embedding_signature(height: int, width: int, dim: int):
    """The MLflow signature of the inference path (mscm.model.inference): two tensor inputs with a
    dynamic batch dimension. pt2 logging needs tensor specs (a tuple example infers none)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema(
            [
                TensorSpec(np.dtype(np.uint8), (-1, height, width, 3), "images"),
                TensorSpec(np.dtype(np.int64), (-1,), "modality"),
            ]
        ),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim), "embedding")]),
    )


def _checkpoint_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    metrics = {
        k: v
        for k, v in payload.get("metrics", {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    return {
        "format": payload["format"],
        "version": payload["version"],
        "num_classes": payload["num_classes"],
        "epoch": payload["epoch"],
        "config": payload["config"],
        "metrics": metrics,
    }


def log_embedding_model(tracking_uri: str, run_id: str, checkpoint_dir: str | Path) -> str:
    """Log in the safe "pt2" (torch.export) format, which loads without unpickling code; returns the model URI."""
    import mlflow
    import mlflow.pytorch

    module, cfg, payload = embedding_model_from_checkpoint(checkpoint_dir)
    h, w = cfg.data.height, cfg.data.width
    example = (torch.zeros(2, h, w, 3, dtype=torch.uint8), torch.tensor([0, 1], dtype=torch.int64))
    with torch.inference_mode():
        dim = int(module(*example).shape[1])
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # one store for both, whatever an earlier caller set
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            module,
            name="model",
            input_example=example,
            signature=embedding_signature(h, w, dim),
            serialization_format="pt2",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata={
                "input": INPUT_DOC,
                "output": OUTPUT_DOC,
                "height": h,
                "width": w,
                "dim": dim,
                "feature": cfg.eval.feature,
                "epoch": payload["epoch"],
                CHECKPOINT_META: _checkpoint_metadata(payload),
            },
        )
    return info.model_uri


def checkpoint_from_model(model_uri: str, tracking_uri: str, directory: str | Path) -> Path:
    """Rebuild the checkpoint (model.pt + metrics.json) of a model logged by :func:`log_embedding_model`.
    The weights are checked against the network its config builds, key by key and shape by shape."""
    import mlflow
    import mlflow.pytorch

    from ..checkpoint import config_of
    from ..model import build_model

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    with quiet_artifact_progress():
        meta = (mlflow.models.get_model_info(model_uri).metadata or {}).get(CHECKPOINT_META)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise CheckpointError(
                f"{model_uri}: not an mscm model (its metadata has no {CHECKPOINT_META} "
                f"of format {FORMAT} version {VERSION})"
            )
        module = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    state = {k[len(WRAPPED) :]: v.detach().cpu() for k, v in module.state_dict().items() if k.startswith(WRAPPED)}
    cfg = config_of({"config": meta["config"]}, model_uri)
    model = build_model(
        dataclasses.replace(cfg.model, pretrained=None), int(meta["num_classes"]), cfg.data.height, cfg.data.width
    )
    load_state_strict(model, state, model_uri)
    return save_checkpoint(
        directory,
        cfg=cfg,
        num_classes=int(meta["num_classes"]),
        model=model.eval(),
        epoch=int(meta["epoch"]),
        metrics=dict(meta.get("metrics", {})),
    )
