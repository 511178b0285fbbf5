"""The logged model (mscm.tracking.model_flavor): a checkpoint plus a python_function flavour, in a real
MLflow store. It loads with mlflow.pyfunc to the checkpoint's own embeddings, gives the checkpoint back
bit for bit, holds no pickle, and refuses bad rows with MLflow's invalid-parameter error (HTTP 400)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from train_configs import tiny_config

NUM_CLASSES = 18


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    import mlflow

    from mscm.checkpoint import save_checkpoint
    from mscm.model import build_model
    from mscm.tracking.model_logging import log_embedding_model

    tmp = tmp_path_factory.mktemp("flavor")
    cfg = tiny_config(tmp)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), NUM_CLASSES, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp / "ckpt", cfg=cfg, num_classes=NUM_CLASSES, model=model, epoch=2, metrics={"mAP": 0.5})
    (tmp / "ckpt" / "train_state.pt").write_bytes(b"optimiser state: never in the model")
    uri = cfg.tracking.tracking_uri
    client = mlflow.MlflowClient(uri)
    run = client.create_run(client.create_experiment("flavor", artifact_location=str(tmp / "artifacts")))
    model_uri = log_embedding_model(uri, run.info.run_id, ckpt)
    return uri, model_uri, ckpt, cfg, tmp


def _batch(cfg, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, cfg.data.height, cfg.data.width, 3), dtype=np.uint8)
    return {"images": images, "modality": np.arange(n) % 2}


def test_the_model_has_both_flavours_and_no_pickle(logged):
    import mlflow

    uri, model_uri, _, cfg, tmp = logged
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(model_uri)
    assert set(info.flavors) == {"mscm", "python_function"}
    assert info.flavors["python_function"]["loader_module"] == "mscm.tracking.pyfunc"
    assert info.metadata["height"] == cfg.data.height and info.metadata["width"] == cfg.data.width
    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp / "download")))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert {"checkpoint/model.pt", "checkpoint/metrics.json", "requirements.txt", "input_example.json"} <= files
    assert not any(f.endswith((".pkl", ".pickle", "train_state.pt")) for f in files), files
    assert "mscm" in (local / "requirements.txt").read_text()


def test_pyfunc_embeds_as_the_checkpoint_does(logged):
    import mlflow

    from mscm.tracking.model_logging import embedding_model_from_checkpoint

    uri, model_uri, ckpt, cfg, _ = logged
    mlflow.set_tracking_uri(uri)
    batch = _batch(cfg, 5)
    got = mlflow.pyfunc.load_model(model_uri).predict(batch)
    reference, _, _ = embedding_model_from_checkpoint(ckpt)
    with torch.inference_mode():
        want = reference(torch.from_numpy(batch["images"]), torch.from_numpy(batch["modality"])).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-6
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_checkpoint_comes_back_with_the_same_weights(logged, tmp_path):
    from mscm.checkpoint import read_metrics, weights_sha256
    from mscm.tracking.model_logging import checkpoint_from_model

    uri, model_uri, ckpt, _, _ = logged
    back = checkpoint_from_model(model_uri, uri, tmp_path)
    assert weights_sha256(back) == weights_sha256(ckpt)
    assert read_metrics(back) == read_metrics(ckpt)
    assert not (back / "train_state.pt").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # MLflow's schema check, before predict: the message is MLflow's own (issue 25 makes it one line)
        (lambda b: {**b, "images": b["images"][:, :10]}, r"Shape of input \(3, 10, 32, 3\) does not match"),
        (lambda b: {**b, "modality": np.array([0, 2, 1])}, "row 1: modality 2"),
        (lambda b: {"images": b["images"][:0], "modality": b["modality"][:0]}, "the batch is empty"),
        (lambda b: {**b, "modality": np.array([0, 1])}, "3 images but 2 modalities"),
        (lambda b: {"pixels": b["images"]}, "missing inputs"),
    ],
)
def test_bad_rows_are_refused_with_an_invalid_parameter_error(logged, change, message):
    import mlflow
    from mlflow.exceptions import MlflowException

    uri, model_uri, _, cfg, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(model_uri)
    with pytest.raises(MlflowException, match=message) as err:
        model.predict(change(_batch(cfg, 3)))
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_model_without_the_mscm_flavour_is_refused(logged, tmp_path):
    from mlflow.models import Model

    from mscm.checkpoint import CheckpointError
    from mscm.tracking.model_flavor import checkpoint_of

    Model(flavors={"python_function": {"loader_module": "elsewhere"}}).save(str(tmp_path / "MLmodel"))
    with pytest.raises(CheckpointError, match="not an mscm model"):
        checkpoint_of(tmp_path, "runs:/x/model")
