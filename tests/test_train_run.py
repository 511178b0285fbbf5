"""One real training run on a local Ray (Train V2, TorchTrainer, gloo) logged to a real MLflow store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from train_configs import tiny_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(local_ray, tmp_path_factory):
    from mscm.train.trainer import run_training

    tmp = tmp_path_factory.mktemp("train_run")
    cfg = tiny_config(tmp, schedule__epochs=2, eval__every_n_epochs=1, tracking__system_metrics=True)
    outcome = run_training(cfg, run_name="tiny-run")
    return cfg, outcome


def test_run_reports_every_epoch_and_keeps_the_best_checkpoint(run):
    from mscm.checkpoint import load_model_payload

    cfg, outcome = run
    m = outcome.final_metrics
    assert m["epoch"] == cfg.schedule.epochs
    for key in (
        "loss/total",
        "loss/ce",
        "loss/qct",
        "perf/images_per_s",
        "perf/epoch_time_s",
        "mAP",
        "rank1",
        "mINP",
        "lr/head",
        "lr/backbone",
    ):
        assert key in m and math.isfinite(m[key]), key
    assert m["dist/world_size"] == 1 and m["train/resumed_from_epoch"] == 0
    # The inference cost a multi-objective search trades against mAP: the deployed model without its classifier.
    from mscm.model import build_model
    from mscm.model.cost import inference_parameters

    model = build_model(cfg.model, int(m["dataset/num_classes"]), cfg.data.height, cfg.data.width)
    assert m["params_m"] == pytest.approx(inference_parameters(model) / 1e6)
    assert 0 < m["latency_ms"] < 10_000
    assert outcome.best_checkpoint is not None
    payload = load_model_payload(outcome.best_checkpoint)
    assert payload["metrics"]["selection_score"] == pytest.approx(m["best/score"])


def test_mlflow_run_holds_params_metrics_artifacts_and_a_loadable_model(run):
    import mlflow
    from mlflow import MlflowClient

    cfg, outcome = run
    client = MlflowClient(tracking_uri=outcome.tracking_uri, registry_uri=outcome.tracking_uri)
    r = client.get_run(outcome.run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["optim.lr"] == str(cfg.optim.lr)
    assert r.data.params["model.backbone"] == "resnet18"
    history = client.get_metric_history(outcome.run_id, "loss/total")
    assert sorted(h.step for h in history) == list(range(1, cfg.schedule.epochs + 1))
    assert any(k.startswith("system/") for k in r.data.metrics), "system metrics were not logged"
    # and its worker's node, labelled by node, per epoch (issue 24)
    assert {k.split("/")[2] for k in r.data.metrics if k.startswith("system/node_")} == {
        "cpu_percent",
        "memory_percent",
    }, sorted(r.data.metrics)

    def names(path):
        return {a.path for a in client.list_artifacts(outcome.run_id, path)}

    assert "config/run.yaml" in names("config")
    assert {"evaluation/eval.json", "evaluation/cmc.png", "evaluation/ranked-lists.png"} <= names("evaluation")
    assert "evaluation/final/eval.json" in names("evaluation/final")
    assert names("best_checkpoint") == set()  # the weights are in MLflow once: the logged model
    final = json.loads(open(client.download_artifacts(outcome.run_id, "evaluation/final/eval.json")).read())
    assert len(final["trials"]) == cfg.eval.trials  # the last epoch runs the full protocol

    model = mlflow.pyfunc.load_model(r.data.tags["model_uri"])
    images = np.random.default_rng(0).integers(0, 256, (3, cfg.data.height, cfg.data.width, 3), dtype=np.uint8)
    emb = model.predict({"image": images, "modality": np.array([0, 1, 1])})
    assert emb.shape[0] == 3 and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_mlflow_run_follows_the_metric_schema_and_records_its_dataset(run):
    from mlflow import MlflowClient

    from mscm.checkpoint import read_metrics
    from mscm.tracking.metrics import MAX_RUN_KEYS

    cfg, outcome = run
    client = MlflowClient(tracking_uri=outcome.tracking_uri, registry_uri=outcome.tracking_uri)
    r = client.get_run(outcome.run_id)
    keys = {k for k in r.data.metrics if not k.startswith("system/")}
    assert len(keys) <= MAX_RUN_KEYS, sorted(keys)
    stray = {k for k in keys if not k.startswith(("eval/", "loss/", "lr/", "perf/", "best/"))}
    assert stray == {"params_m", "latency_ms"}, stray
    assert not any(k.startswith("best/best") or "wall" in k for k in keys)
    assert {"perf/images_per_s", "perf/epoch_time_s", "perf/eval_time_s", "eval/mAP", "eval/rank20"} <= keys
    # eval/ once per evaluated epoch, at step = epoch; the summary once, from the best checkpoint.
    assert sorted(h.step for h in client.get_metric_history(outcome.run_id, "eval/mAP")) == [1, 2]
    assert len(client.get_metric_history(outcome.run_id, "best/mAP")) == 1
    best = read_metrics(outcome.best_checkpoint)
    assert r.data.metrics["best/mAP"] == pytest.approx(best["mAP"])
    assert r.data.metrics["best/epoch"] == best["epoch"]
    (dataset,) = r.inputs.dataset_inputs
    assert dataset.dataset.name == "sysu-test" and len(dataset.dataset.digest) == 16
    assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "training"
    assert json.loads(dataset.dataset.source)["layout"] == "sysu"
