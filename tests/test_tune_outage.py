"""A whole search outlives its MLflow server going away for 150 s, longer than MLflow's own HTTP retries
(issue 23): the server is killed after the first epoch reached it and started again on the same store 150 s
later. The search finishes with exit 0, and the record is whole: every trial's run ended as its Tune trial
did, with one step per epoch, its best/ summary and its model; no run is left RUNNING; Optuna agrees."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from mlflow_servers import MlflowServer
from pg_server import wait_until
from train_configs import SLOWER, one_knob_space, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]

OUTAGE_S = 150
TRIALS, EPOCHS = 2, 3


def _trial_runs(client, parent_id: str | None = None) -> list:
    exp = client.get_experiment_by_name("mscm")
    if exp is None:
        return []
    where = f"tags.mlflow.parentRunId = '{parent_id}'" if parent_id else "tags.ray_trial_id != ''"
    return client.search_runs([exp.experiment_id], where)


def test_a_search_outlives_a_150_s_mlflow_outage_with_its_record_whole(tmp_path):
    import optuna
    from mlflow import MlflowClient

    from mscm.tracking.contract import MODEL_URI_TAG, STATUS_TAG, search_filter

    server = MlflowServer(tmp_path / "server").start()
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = tune_command(
        one_knob_space(tmp_path / "space.yaml", epochs=EPOCHS, trials=TRIALS, overrides=SLOWER), "outage"
    )
    args += ["--tracking-uri", server.url, "--optuna-url", optuna_url, "--no-baseline"]
    args += ["--storage-path", str(tmp_path / "ray_results"), "--drain-timeout", str(3 * OUTAGE_S)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p.endswith("platform"))}
    client = MlflowClient(tracking_uri=server.url)

    def first_epoch_logged() -> bool:
        return any(client.get_metric_history(r.info.run_id, "eval/mAP") for r in _trial_runs(client))

    (tmp_path / "cwd").mkdir()
    with open(tmp_path / "console.log", "w") as out:
        proc = subprocess.Popen(args, cwd=tmp_path / "cwd", env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: proc.poll() is not None or first_epoch_logged(), 600, "the first epoch in MLflow")
            server.stop()  # killed, as a crashed or pre-empted server
            away_until = time.monotonic() + OUTAGE_S
            while time.monotonic() < away_until and proc.poll() is None:
                time.sleep(1)  # the search goes on without its tracking server
            server.start()  # the same store and port
            code = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
            console = (tmp_path / "console.log").read_text()
    try:
        assert code == 0, console[-3000:]
        exp = client.get_experiment_by_name("mscm")
        [parent] = client.search_runs([exp.experiment_id], search_filter("outage"))
        runs = _trial_runs(client, parent.info.run_id)
        assert len(runs) == TRIALS, [r.info.run_name for r in runs]
        for run in runs:
            assert run.info.status == "FINISHED" and run.data.tags[STATUS_TAG] == "completed", run.data.tags
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/mAP")]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), steps  # none lost, none twice
            assert "best/mAP" in run.data.metrics
            assert run.data.tags.get(MODEL_URI_TAG, "").startswith("models:/")
        everything = client.search_runs([exp.experiment_id], "")
        assert [r.info.run_name for r in everything if r.info.status == "RUNNING"] == []
        assert parent.info.status == "FINISHED"
        study = optuna.load_study(study_name="outage", storage=optuna_url)
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * TRIALS
        assert list((tmp_path / "cwd").iterdir()) == []
    finally:
        server.stop()
