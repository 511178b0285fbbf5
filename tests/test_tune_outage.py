"""A whole search outlives its MLflow server going away (issue 23).

- Away for 150 s, longer than MLflow's own HTTP retries: the server is killed after the first epoch reached
  it and started again on the same store 150 s later. The search exits 0 and the record is whole.
- Never back while the search runs: the training finishes, the search exits 75 naming `mscm sync`, and once
  a server is back on the store that command makes the record whole.

Both searches join the session's Ray, as a search on a cluster joins the cluster's: the test is about the
tracking server, and a Ray start of their own costs about 11 CPU-s and 12 s each here.

Whole means: every trial's run ended as its Tune trial did, with one step per epoch, its best/ summary and
its model; no run is left RUNNING; the Optuna trials agree."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow_servers import MlflowServer
from processes import child_env, wait_until
from train_configs import SLOWER, one_knob_space, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]

OUTAGE_S = 150


def _trial_runs(client, parent_id: str | None = None) -> list:
    exp = client.get_experiment_by_name("mscm")
    if exp is None:
        return []
    where = f"tags.mlflow.parentRunId = '{parent_id}'" if parent_id else "tags.ray_trial_id != ''"
    return client.search_runs([exp.experiment_id], where)


def _search_with_server_away(
    tmp_path: Path, ray_address: str, name: str, trials: int, epochs: int, away_s: float, drain_s: float
):
    """Run `mscm tune` on the session's Ray against a real server, kill the server after the first epoch
    reached it, start it again ``away_s`` later (or never, with ``away_s`` inf). Returns (exit code,
    console, server)."""
    from mlflow import MlflowClient

    server = MlflowServer(tmp_path / "server").start()
    space = one_knob_space(tmp_path / "space.yaml", epochs=epochs, trials=trials, overrides=SLOWER)
    args = tune_command(space, name, "--tracking-uri", server.url, "--no-baseline")
    args += ["--optuna-url", f"sqlite:///{tmp_path / 'optuna.db'}", "--drain-timeout", str(drain_s)]
    args += ["--storage-path", str(tmp_path / "ray_results")]
    env = child_env(RAY_ADDRESS=ray_address)
    client = MlflowClient(tracking_uri=server.url)

    def first_epoch_logged() -> bool:
        return any(client.get_metric_history(r.info.run_id, "eval/mAP") for r in _trial_runs(client))

    (tmp_path / "cwd").mkdir()
    with open(tmp_path / "console.log", "w") as out:
        proc = subprocess.Popen(args, cwd=tmp_path / "cwd", env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: proc.poll() is not None or first_epoch_logged(), 600, "the first epoch in MLflow")
            server.stop()  # killed, as a crashed or pre-empted server
            away_until = time.monotonic() + away_s
            while time.monotonic() < away_until and proc.poll() is None:
                time.sleep(1)  # the search goes on without its tracking server
            if proc.poll() is None:
                server.start()  # the same store and port
            code = proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, (tmp_path / "console.log").read_text(), server


def _assert_record_whole(server: MlflowServer, name: str, trials: int, epochs: int, optuna_url: str) -> None:
    import optuna
    from mlflow import MlflowClient

    from mscm.tracking.contract import MODEL_URI_TAG, STATUS_TAG, search_filter

    client = MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name("mscm")
    [parent] = client.search_runs([exp.experiment_id], search_filter(name))
    runs = _trial_runs(client, parent.info.run_id)
    assert len(runs) == trials, [r.info.run_name for r in runs]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags[STATUS_TAG] == "completed", run.data.tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "eval/mAP")]
        assert sorted(steps) == list(range(1, epochs + 1)), steps  # none lost, none twice
        assert "best/mAP" in run.data.metrics
        assert run.data.tags.get(MODEL_URI_TAG, "").startswith("models:/")
    everything = client.search_runs([exp.experiment_id], "")
    assert [r.info.run_name for r in everything if r.info.status == "RUNNING"] == []
    assert parent.info.status == "FINISHED"
    study = optuna.load_study(study_name=name, storage=optuna_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * trials


def test_a_search_outlives_a_150_s_mlflow_outage_with_its_record_whole(tmp_path, session_ray_address):
    code, console, server = _search_with_server_away(
        tmp_path, session_ray_address, "outage", 2, 3, OUTAGE_S, drain_s=3 * OUTAGE_S
    )
    try:
        assert code == 0, console[-3000:]
        _assert_record_whole(server, "outage", 2, 3, f"sqlite:///{tmp_path / 'optuna.db'}")
        assert list((tmp_path / "cwd").iterdir()) == []
    finally:
        server.stop()


def test_a_server_that_never_returns_ends_in_exit_75_and_mscm_sync_makes_the_record_whole(
    tmp_path, session_ray_address
):
    from mscm.tune.sync import sync_command

    code, console, server = _search_with_server_away(
        tmp_path, session_ray_address, "away", 1, 2, float("inf"), drain_s=5
    )
    try:
        assert code == 75, console[-3000:]
        assert "t00 completed" in console  # the training finished without its server
        command = sync_command("away", str(tmp_path / "ray_results"), server.url)
        assert command in console and "MLflow writes wait" in console, console[-2000:]

        server.start()  # back on the same store, after the search has ended
        env = child_env()
        argv = [sys.executable, "-m", "mscm", *command.split()[1:]]
        done = subprocess.run(argv, cwd=tmp_path / "cwd", env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        _assert_record_whole(server, "away", 1, 2, f"sqlite:///{tmp_path / 'optuna.db'}")
        assert list((tmp_path / "cwd").iterdir()) == []
    finally:
        server.stop()
