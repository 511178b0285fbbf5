"""The ``python_function`` face of an mscm model (:mod:`mscm.tracking.model_flavor`): what
``mlflow.pyfunc.load_model``, ``mlflow.models.predict`` and ``mlflow models serve`` call.

Input: ``{"images": uint8 (B, H, W, 3) RGB, "modality": int (B,) 0 = visible, 1 = infrared}`` at the
model's input size (its signature says which). Output: float32 (B, D), L2-normalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datasets.records import Modality

_MODALITIES = {int(m) for m in Modality}


def _bad_input(message: str) -> Exception:
    """MLflow's own error class, so that `mlflow models serve` answers HTTP 400, not 500."""
    from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class EmbeddingPredictor:
    """``predict`` for a loaded :class:`~mscm.model.inference.EmbeddingModel`."""

    def __init__(self, module: Any, height: int, width: int):
        self.module, self.height, self.width = module, height, width

    def _arrays(self, model_input: Any) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(model_input, dict) or not {"images", "modality"} <= set(model_input):
            raise _bad_input('the input must hold "images" (B,H,W,3) uint8 and "modality" (B,) int')
        images = np.asarray(model_input["images"])
        modality = np.asarray(model_input["modality"]).astype(np.int64).reshape(-1)
        want = (self.height, self.width, 3)
        if images.ndim != 4 or images.shape[1:] != want:
            raise _bad_input(f"images have shape {images.shape}, expected (B, {', '.join(map(str, want))})")
        if len(images) == 0:
            raise _bad_input("the batch is empty")
        if len(modality) != len(images):
            raise _bad_input(f"{len(images)} images but {len(modality)} modalities")
        unknown = [i for i, m in enumerate(modality.tolist()) if m not in _MODALITIES]
        if unknown:
            raise _bad_input(f"row {unknown[0]}: modality {modality[unknown[0]]} is not 0 (visible) or 1 (infrared)")
        return images.astype(np.uint8, copy=False), modality

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        images, modality = self._arrays(model_input)
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(modality))
        return out.float().numpy()


def _load_pyfunc(data_path: str) -> EmbeddingPredictor:
    """MLflow's entry point: ``data_path`` is the model folder's checkpoint (weights_only load)."""
    from .model_logging import embedding_model_from_checkpoint

    module, cfg, _ = embedding_model_from_checkpoint(data_path)
    return EmbeddingPredictor(module, cfg.data.height, cfg.data.width)
