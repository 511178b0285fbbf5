"""The logged model (mscm.tracking.model_flavor): a checkpoint plus a python_function flavour, in a real
MLflow store. It loads with mlflow.pyfunc to the checkpoint's own embeddings, gives the checkpoint back
bit for bit, holds no pickle, and refuses bad rows with MLflow's invalid-parameter error (HTTP 400)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from logged_models import log_tiny_model


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flavor")
    m = log_tiny_model(tmp, "flavor")
    return m.tracking_uri, m.model_uri, m.checkpoint, m.cfg, tmp


def _batch(cfg, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, cfg.data.height, cfg.data.width, 3), dtype=np.uint8)
    return {"image": images, "modality": np.arange(n) % 2}


def _png_b64(pixels: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


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
        want = reference(torch.from_numpy(batch["image"]), torch.from_numpy(batch["modality"])).numpy()
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


def test_base64_pngs_bytes_and_other_sizes_embed_as_a_file_is_embedded(logged, tmp_path):
    """Encoded images (base64 text or bytes) and arrays of another size are resized as `mscm retrieve`
    resizes a file, so all three give the embedding of the same picture read from disk."""
    import mlflow
    import pandas as pd
    from PIL import Image

    from mscm.data.cache import load_image

    uri, model_uri, ckpt, cfg, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(model_uri)
    big = np.random.default_rng(1).integers(0, 256, (2 * cfg.data.height + 3, 2 * cfg.data.width + 1, 3), np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    on_disk = load_image(str(tmp_path / "big.png"), cfg.data.height, cfg.data.width)
    want = model.predict({"image": on_disk[None], "modality": np.array([1])})
    forms = {
        "base64": _png_b64(big),
        "bytes": (tmp_path / "big.png").read_bytes(),
        "array": big,
    }
    for name, value in forms.items():
        got = model.predict(pd.DataFrame({"image": [value], "modality": ["infrared"]}))
        assert np.abs(got - want).max() <= 1e-6, name


def test_the_logged_input_example_runs_through_mlflow_models_predict(logged, tmp_path):
    import json

    import mlflow

    uri, model_uri, _, cfg, _ = logged
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature.inputs.input_names() == ["image", "modality"]
    local = mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "m"))
    example = mlflow.models.Model.load(local).get_serving_input(local)
    assert json.loads(example)["dataframe_split"]["columns"] == ["image", "modality"]  # as HTTP clients send it
    (tmp_path / "request.json").write_text(example)
    out = tmp_path / "predictions.json"
    request = str(tmp_path / "request.json")
    mlflow.models.predict(model_uri, input_path=request, content_type="json", env_manager="local", output_path=str(out))
    rows = np.asarray(json.loads(out.read_text())["predictions"])
    assert rows.shape[0] == 2 and np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_a_dict_of_lists_is_rows_not_one_row(logged):
    import mlflow

    uri, model_uri, _, cfg, _ = logged
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(model_uri)
    batch = _batch(cfg, 2)
    got = model.predict({"image": [_png_b64(p) for p in batch["image"]], "modality": ["visible", "infrared"]})
    assert np.abs(got - model.predict(batch)).max() <= 1e-6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: {**b, "image": b["image"][:, :, :, :2]}, r"row 0: the image array has shape \(\d+, \d+, 2\)"),
        (lambda b: {**b, "image": [b["image"][0], b"not an image", b["image"][2]]}, "row 1: the image bytes are not"),
        (lambda b: {**b, "image": [b["image"][0], b["image"][1], "bm90IGFuIGltYWdl"]}, "row 2: the image bytes"),
        (lambda b: {**b, "image": [b["image"][0], 3.5, b["image"][2]]}, "row 1: image must be base64"),
        (lambda b: {**b, "modality": np.array([0, 2, 1])}, "row 1: modality 2"),
        (lambda b: {**b, "modality": ["visible", "infrared", "thermal-ish"]}, "row 2: modality 'thermal-ish'"),
        (lambda b: {"image": b["image"][:0], "modality": b["modality"][:0]}, "the batch is empty"),
        (lambda b: {"pixels": b["image"], "modality": b["modality"]}, "missing inputs"),
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


def test_columns_of_different_lengths_are_refused_before_any_decoding():
    """MLflow's own schema check refuses a dict of unequal columns before predict; the input reader, which
    also serves callers of the loader itself, names the mismatch."""
    from mscm.tracking.pyfunc_input import BadRows, batch_of

    with pytest.raises(BadRows, match="3 images but 2 modalities"):
        batch_of({"image": [b"x", b"y", b"z"], "modality": [0, 1]}, 8, 4)


def test_a_model_without_the_mscm_flavour_is_refused(logged, tmp_path):
    from mlflow.models import Model

    from mscm.checkpoint import CheckpointError
    from mscm.tracking.model_flavor import checkpoint_of

    Model(flavors={"python_function": {"loader_module": "elsewhere"}}).save(str(tmp_path / "MLmodel"))
    with pytest.raises(CheckpointError, match="not an mscm model"):
        checkpoint_of(tmp_path, "runs:/x/model")
