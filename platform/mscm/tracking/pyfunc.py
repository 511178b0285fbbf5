"""The ``python_function`` face of an mscm model (:mod:`mscm.tracking.model_flavor`): what
``mlflow.pyfunc.load_model``, ``mlflow.models.predict`` and ``mlflow models serve`` call.

Input: rows of ``image`` and ``modality`` (:mod:`mscm.tracking.pyfunc_input`: base64 JPEG/PNG, bytes or
uint8 arrays of any size, resized as the protocol resizes). Output: float32 (B, D), L2-normalised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .pyfunc_input import BadRows, batch_of


def _bad_input(message: str) -> Exception:
    """MLflow's own error class, so that `mlflow models serve` answers HTTP 400, not 500."""
    from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class EmbeddingPredictor:
    """``predict`` for a loaded :class:`~mscm.model.inference.EmbeddingModel`."""

    def __init__(self, module: Any, height: int, width: int):
        self.module, self.height, self.width = module, height, width

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        import torch

        try:
            images, modality = batch_of(model_input, self.height, self.width)
        except BadRows as e:
            raise _bad_input(str(e)) from None
        with torch.inference_mode():
            out = self.module(torch.from_numpy(images), torch.from_numpy(modality))
        return out.float().numpy()


def _load_pyfunc(data_path: str) -> EmbeddingPredictor:
    """MLflow's entry point: ``data_path`` is the model folder's checkpoint (weights_only load)."""
    from .model_logging import embedding_model_from_checkpoint

    module, cfg, _ = embedding_model_from_checkpoint(data_path)
    return EmbeddingPredictor(module, cfg.data.height, cfg.data.width)
