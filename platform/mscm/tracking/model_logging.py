"""The inference model of a checkpoint in MLflow: log it (the ``mscm`` flavour of
:mod:`mscm.tracking.model_flavor`, which is also a ``python_function`` model), and read it back.

The logged model is the one copy of a run's weights in MLflow: its folder holds the checkpoint's
``model.pt`` (every parameter and buffer, the run config, the number of classes, the epoch) and
``metrics.json``, without the optimiser state (which stays in Ray's checkpoints). So
:func:`checkpoint_from_model` gives back the checkpoint that promotion evaluates and registers.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

import torch

from ..checkpoint import load_model
from ..environ import temporary_env

INPUT_DOC = (
    "rows of image (base64 JPEG/PNG, bytes or uint8 (h,w,3) RGB, any size: LANCZOS-resized) and "
    "modality (visible/infrared or 0/1)"
)
OUTPUT_DOC = "float32 (B,D) L2-normalised"
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def quiet_artifact_progress() -> contextlib.AbstractContextManager:
    """No progress bar per artifact download: one bar per small file is noise."""
    return temporary_env(_PROGRESS_ENV, "false")


def embedding_model_from_checkpoint(checkpoint_dir: str | Path):
    from ..model.inference import EmbeddingModel

    model, cfg, payload = load_model(checkpoint_dir, "cpu")
    return EmbeddingModel(model, feature=cfg.eval.feature).eval(), cfg, payload


def embedding_signature(dim: int):
    """The MLflow signature of the served model: rows of ``image`` and ``modality``
    (:mod:`mscm.tracking.pyfunc_input`). Both columns are ``Any``: an image is base64 text, bytes or a
    nested array, and a modality a name or a number, so the model checks each row itself and names the
    bad one (MLflow's own type check would name neither)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec
    from mlflow.types.schema import AnyType

    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "image"), ColSpec(AnyType(), "modality")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim), "embedding")]),
    )


def input_example(height: int, width: int):
    """Two rows as a plain HTTP client sends them: base64 PNGs (a grey and a dark one) and modality names."""
    import base64
    import io

    from PIL import Image

    def png(level: int) -> str:
        buf = io.BytesIO()
        Image.new("RGB", (width, height), (level, level, level)).save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode("ascii")

    import pandas as pd

    # A DataFrame, so that MLflow writes it as two rows (a dict of lists would be saved as one row).
    return pd.DataFrame({"image": [png(128), png(40)], "modality": ["visible", "infrared"]})


def log_embedding_model(tracking_uri: str, run_id: str, checkpoint_dir: str | Path) -> str:
    """Log the checkpoint as the run's model (``name="model"``); returns its model URI. Nothing is
    exported or traced: the folder holds the checkpoint's files, so this takes about as long as
    copying them (and building the model once, for the signature's embedding size)."""
    import mlflow
    from mlflow.models import Model

    from . import model_flavor
    from .mlflow_run import RedactingStream

    module, cfg, payload = embedding_model_from_checkpoint(checkpoint_dir)
    h, w = cfg.data.height, cfg.data.width
    with torch.inference_mode():
        dim = int(module(torch.zeros(1, h, w, 3, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64)).shape[1])
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)  # one store for both, whatever an earlier caller set
    # The active run names the experiment the logged model belongs to (Model.log takes no experiment);
    # ending it prints the run's URL, tracking URI included: redacted.
    with contextlib.redirect_stdout(RedactingStream(sys.stdout)), mlflow.start_run(run_id=run_id):
        info = Model.log(
            None,  # artifact_path: deprecated, but still a required positional argument in MLflow 3
            name="model",
            flavor=model_flavor,
            run_id=run_id,
            checkpoint_dir=str(checkpoint_dir),
            signature=embedding_signature(dim),
            input_example=input_example(h, w),
            metadata={
                "input": INPUT_DOC,
                "output": OUTPUT_DOC,
                "height": h,
                "width": w,
                "dim": dim,
                "feature": cfg.eval.feature,
                "epoch": payload["epoch"],
            },
        )
    return info.model_uri


def _downloaded_checkpoint(model_uri: str, tracking_uri: str, directory: Path) -> Path:
    """The checkpoint folder of a logged mscm model, downloaded under ``directory/_model``."""
    import mlflow.artifacts

    from .model_flavor import checkpoint_of

    with quiet_artifact_progress():
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(directory / "_model"), tracking_uri=tracking_uri
        )
    return checkpoint_of(local, model_uri)


def checkpoint_from_model(model_uri: str, tracking_uri: str, directory: str | Path) -> Path:
    """The checkpoint (model.pt + metrics.json) of a model logged by :func:`log_embedding_model`, in
    ``directory``. Its weights are checked against the network its config builds, key by key and shape
    by shape, before it is returned."""
    directory = Path(directory)
    found = _downloaded_checkpoint(model_uri, tracking_uri, directory)
    load_model(found, "cpu")  # CheckpointError names what does not fit
    out = directory / "checkpoint"
    shutil.copytree(found, out, dirs_exist_ok=True)
    shutil.rmtree(directory / "_model", ignore_errors=True)
    return out


def load_logged_model(model_uri: str, tracking_uri: str):
    """``(EmbeddingModel, config, payload)`` of a logged mscm model (``models:/...``, ``runs:/...``); building
    it checks the weights against the network as :func:`checkpoint_from_model` does."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mscm-model-") as scratch:
        return embedding_model_from_checkpoint(_downloaded_checkpoint(model_uri, tracking_uri, Path(scratch)))
