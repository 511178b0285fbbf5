"""Log a checkpoint's inference model (:class:`~mscm.model.inference.EmbeddingModel`) with mlflow.pytorch."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import load_model

INPUT_DOC = "images uint8 (B,H,W,3) RGB, modality int64 (B,) 0=visible 1=infrared"
OUTPUT_DOC = "float32 (B,D) L2-normalised"


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
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, height, width, 3), "images"),
                       TensorSpec(np.dtype(np.int64), (-1,), "modality")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim), "embedding")]),
    )


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
            metadata={"input": INPUT_DOC, "output": OUTPUT_DOC, "height": h, "width": w, "dim": dim,
                      "feature": cfg.eval.feature, "epoch": payload["epoch"]},
        )
    return info.model_uri
