"""Both stores on a real PostgreSQL server (issue 23): Optuna's study through mscm's storage (connection
checks, retries across a database restart, no password in its pickle), MLflow through `mlflow server` on
PostgreSQL and directly by URI (artifacts only where configured), and a whole search on PostgreSQL with
the database restarted under it and a password in both URIs that ends up nowhere."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow_servers import MlflowServer
from pg_server import PostgresServer, why_no_postgres
from processes import child_env, wait_until
from train_configs import SLOWER, one_knob_space, tune_command

pytestmark = pytest.mark.skipif(why_no_postgres() is not None, reason=why_no_postgres() or "")


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer().start()
    yield server
    server.remove()


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_the_optuna_storage_survives_a_database_restart_and_pickles_no_password(pg):
    import optuna

    from mscm.tune import optuna_storage
    from mscm.tune.optuna_storage import open_storage

    pg.create_database("optuna_restart")
    storage = open_storage(pg.url("optuna_restart", with_password=True), retry_s=120)
    study = optuna.create_study(study_name="restart", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    blob = pickle.dumps(storage)  # what Tune writes into its experiment state with the searcher
    assert pg.password.encode() not in blob

    pg.stop()  # the database goes away between two trials and comes back 4 s later
    restart = threading.Timer(4, pg.start)
    restart.start()
    try:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    finally:
        restart.join()
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3

    # A resumed search unpickles the storage: the password comes from the URL given again in that process,
    # or from libpq's PGPASSWORD / ~/.pgpass.
    assert len(optuna.load_study(study_name="restart", storage=pickle.loads(blob)).trials) == 3
    optuna_storage._PASSWORDS.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", pg.password)
        assert len(optuna.load_study(study_name="restart", storage=pickle.loads(blob)).trials) == 3


def test_a_bad_statement_is_not_retried(pg):
    from optuna.exceptions import StorageInternalError

    from mscm.tune.optuna_storage import open_storage

    pg.create_database("optuna_bad")
    storage = open_storage(pg.url("optuna_bad", with_password=True), retry_s=120)
    start = time.monotonic()
    with pytest.raises((StorageInternalError, KeyError)):
        storage.get_study_id_from_name("no such study")
    assert time.monotonic() - start < 5


def test_mlflow_by_database_uri_keeps_every_artifact_where_configured(pg, tmp_path, monkeypatch):
    import dataclasses

    import torch
    from train_configs import tiny_config

    from mscm.checkpoint import save_checkpoint
    from mscm.model import build_model
    from mscm.tracking.mlflow_run import RunLogger
    from mscm.tracking.model_logging import log_embedding_model

    pg.create_database("mlflow_direct")
    monkeypatch.setenv("PGPASSWORD", pg.password)  # the URI carries none
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    uri = pg.url("mlflow_direct")
    cfg = tiny_config(tmp_path)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), 18, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp_path / "ckpt", cfg=cfg, num_classes=18, model=model, epoch=1, metrics={"mAP": 0.5})

    run = RunLogger(uri, "direct", run_name="by-uri", artifact_location=str(tmp_path / "artifacts"))
    run.log_artifact(str(ckpt / "metrics.json"), "extra")
    model_uri = log_embedding_model(uri, run.run_id, ckpt)
    run.end("FINISHED")

    assert list((tmp_path / "cwd").iterdir()) == []  # MLflow's ./mlruns default was never used
    stored = {p.relative_to(tmp_path / "artifacts").as_posix() for p in (tmp_path / "artifacts").rglob("*.pt")}
    assert any(p.endswith("checkpoint/model.pt") for p in stored), stored
    assert "by-uri" in pg.dump("mlflow_direct") and model_uri.startswith("models:/")


def test_a_database_uri_without_an_artifact_location_is_refused_in_one_line(tmp_path):
    """Before Ray, before anything is written; the password in the URI is not printed."""
    uri = "postgresql+psycopg://mscm:s3cret-pw@127.0.0.1:5/mlflow"
    env = {**os.environ, "MSCM_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "mscm", "train", "-c", "smoke", "--tracking-uri", uri],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    error, hint = done.stderr.strip().splitlines()  # the project's one error line, and its hint
    assert error.startswith("mscm train: error: ") and "needs an artifact location" in error, error
    assert hint.strip().startswith("hint: --artifact-location"), hint
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even MSCM_HOME


def test_an_mlflow_server_on_postgresql_records_a_run(pg, tmp_path):
    from mscm.tracking.mlflow_run import RunLogger

    pg.create_database("mlflow_server")
    server = MlflowServer(tmp_path / "server", backend=pg.url("mlflow_server"), env=pg.client_env()).start()
    try:
        run = RunLogger(server.url, "served", run_name="through-the-server")
        run.log_metrics({"mAP": 0.25}, step=1)
        run.end("FINISHED")
    finally:
        server.stop()
    dump = pg.dump("mlflow_server")
    assert "through-the-server" in dump and "FINISHED" in dump


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_on_postgresql_outlives_a_database_restart_and_leaves_the_password_nowhere(
    pg, tmp_path, session_ray_address
):
    import optuna
    from mlflow import MlflowClient

    pg.create_database("mlflow_search")
    pg.create_database("optuna_search")
    uri, optuna_url = pg.url("mlflow_search", with_password=True), pg.url("optuna_search", with_password=True)
    (tmp_path / "cwd").mkdir()
    args = tune_command(
        one_knob_space(tmp_path / "space.yaml", epochs=3, overrides=SLOWER),
        "on-pg",
    )
    args += ["--tracking-uri", uri, "--artifact-location", str(tmp_path / "artifacts"), "--optuna-url", optuna_url]
    args += ["--storage-path", str(tmp_path / "ray_results"), "--no-baseline"]
    env = child_env(RAY_ADDRESS=session_ray_address)  # the session's Ray: the test is about the database
    client = MlflowClient(tracking_uri=uri)

    def first_epoch_logged() -> bool:
        exp = client.get_experiment_by_name("mscm")
        runs = client.search_runs([exp.experiment_id], "tags.ray_trial_id != ''") if exp else []
        return any(client.get_metric_history(r.info.run_id, "eval/mAP") for r in runs)

    with open(tmp_path / "console.log", "w") as out:
        proc = subprocess.Popen(args, cwd=tmp_path / "cwd", env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: proc.poll() is not None or first_epoch_logged(), 600, "the first epoch in MLflow")
            pg.stop()  # the database restarts under the running search
            time.sleep(6)
            pg.start()
            code = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    console = (tmp_path / "console.log").read_text()
    assert code == 0, console[-3000:]

    exp = client.get_experiment_by_name("mscm")
    [run] = client.search_runs([exp.experiment_id], "tags.ray_trial_id != ''")
    assert run.info.status == "FINISHED" and run.data.tags["mscm.trial_status"] == "completed"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "eval/mAP")) == [1, 2, 3]
    assert "model_uri" in run.data.tags
    study = optuna.load_study(study_name="on-pg", storage=optuna_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]

    assert list((tmp_path / "cwd").iterdir()) == []  # nothing in the working directory
    assert any((tmp_path / "artifacts").rglob("model.pt"))  # the models went where they were told
    # A quiet console: Ray Train's per-report worker lines stay in Ray's log folder, which the search names.
    assert "Reporting training result" not in console and "RayTrainWorker" not in console, console[-3000:]
    assert "Ray's own output (workers, Train controllers): " in console
    secret = pg.password.encode()
    assert secret not in console.encode(), "the password is on the console"
    for db in ("mlflow_search", "optuna_search"):
        assert pg.password not in pg.dump(db), f"the password is in the {db} tables"
    for folder in ("artifacts", "ray_results"):
        assert _files_holding(tmp_path / folder, secret) == [], f"the password is in {folder}/"
