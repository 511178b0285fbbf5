"""A registered mscm model served by a real `mlflow models serve` on 127.0.0.1: plain HTTP requests with
base64 PNGs get the embeddings `mscm retrieve` computes from the same files, bad rows get HTTP 400 with
one message naming the row, and the server keeps serving after them. Also `mlflow.pyfunc.load_model` on
the registered version (models:/NAME@champion)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from logged_models import log_tiny_model
from processes import child_env, wait_until

pytestmark = pytest.mark.slow
NAME = "mscm-serving"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A checkpoint logged as a run's model and registered as version 1, alias champion."""
    import mlflow

    tmp = tmp_path_factory.mktemp("serving")
    m = log_tiny_model(tmp, "serving", seed=3, num_classes=12)
    client = mlflow.MlflowClient(m.tracking_uri, registry_uri=m.tracking_uri)
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, m.model_uri, run_id=m.run_id)
    client.set_registered_model_alias(NAME, "champion", version.version)
    return m.tracking_uri, tmp, m.cfg


@pytest.fixture(scope="module")
def pictures(registered):
    """Six PNG files of other sizes than the model's input: the server and `mscm retrieve` resize them."""
    from PIL import Image

    _, tmp, cfg = registered
    folder = tmp / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for i in range(6):
        size = (cfg.data.width * 2 + i, cfg.data.height * 2 - i)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return sorted(folder.glob("*.png"))


@pytest.fixture(scope="module")
def server(registered):
    from mscm.tracking.ui import free_port

    uri, tmp, _ = registered
    port = free_port()
    log = (tmp / "serve.log").open("w")
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion"]
    cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # The server runs `uvicorn` by name: this environment's bin folder first, as in an activated venv.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = child_env(MLFLOW_TRACKING_URI=uri, PATH=path)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp / "serve.log").read_text()[-3000:]
        try:
            return urllib.request.urlopen(f"{base}/ping", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(up, 180, "mlflow models serve to answer /ping")
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _post(base: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{base}/invocations", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _rows(files, modality: str) -> dict:
    images = [base64.b64encode(p.read_bytes()).decode("ascii") for p in files]
    return {"dataframe_split": {"columns": ["image", "modality"], "data": [[i, modality] for i in images]}}


def test_served_embeddings_equal_those_of_mscm_retrieve(registered, pictures, server):
    from mscm.datasets.records import Modality
    from mscm.registry.retrieve import embed_files
    from mscm.registry.source import load_embedder

    uri, _, _ = registered
    base, _ = server
    status, body = _post(base, _rows(pictures, "infrared"))
    assert status == 200, body
    served = np.asarray(body["predictions"], dtype=np.float32)
    want, kept, _ = embed_files(load_embedder(f"models:/{NAME}@champion", uri), pictures, Modality.INFRARED)
    assert kept == pictures
    assert served.shape == tuple(want.shape)
    assert np.abs(served - want.numpy()).max() <= 1e-5
    assert np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([[[[1, 2], [3, 4]]], "visible"], "row 1: the image array has shape (1, 2, 2), expected (h, w, 3)"),
        ([base64.b64encode(b"GIF? no, plain text").decode(), "visible"], "row 1: the image bytes are not an image"),
        (["PNG", "thermal-camera"], "row 1: modality 'thermal-camera' is not"),
    ],
)
def test_a_bad_row_gets_400_naming_it_and_the_server_keeps_serving(pictures, server, row, message):
    base, proc = server
    body = _rows(pictures[:1], "visible")
    if row[0] == "PNG":
        row = [body["dataframe_split"]["data"][0][0], row[1]]
    body["dataframe_split"]["data"].append(row)
    status, answer = _post(base, body)
    assert status == 400, answer
    assert message in answer["message"], answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert _post(base, _rows(pictures[:2], "visible"))[0] == 200  # still serving
    assert proc.poll() is None


def test_an_empty_batch_gets_400(server):
    base, _ = server
    status, answer = _post(base, {"dataframe_split": {"columns": ["image", "modality"], "data": []}})
    assert status == 400 and "the batch is empty" in answer["message"], answer


def test_pyfunc_loads_the_registered_champion(registered, pictures):
    import mlflow
    import pandas as pd

    uri, _, _ = registered
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    rows = pd.DataFrame({"image": [p.read_bytes() for p in pictures], "modality": [0] * len(pictures)})
    out = model.predict(rows)
    assert out.shape[0] == len(pictures) and out.dtype == np.float32
    assert model.metadata.get_input_schema().input_names() == ["image", "modality"]
