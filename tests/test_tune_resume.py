"""An interrupted search (its driver process killed) continues with --resume: finished trials are kept,
their MLflow runs are not duplicated, and the Optuna study ends with every trial."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from processes import child_env
from train_configs import one_knob_space, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TRIALS = 2  # one finishes before the kill, one after the resume; each costs ~30 s of Ray start-up


def _finished_trial_runs(uri: str) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("mscm")
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], filter_string="tags.ray_trial_id != ''")
    return {r.data.tags["ray_trial_id"]: r.info.run_id for r in runs if r.info.status == "FINISHED"}


def test_killed_search_resumes_without_duplicating_trials(tmp_path):
    import optuna
    from mlflow import MlflowClient

    from mscm.tracking.contract import STATUS_TAG

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        *tune_command(
            one_knob_space(
                tmp_path / "space.yaml", epochs=2, trials=TRIALS, sampler="tpe", seed=3, max_concurrent_trials=1
            ),
            "resumable",
        ),
        "--tracking-uri",
        uri,
        "--storage-path",
        str(tmp_path / "ray_results"),
        "--optuna-url",
        optuna_url,
        "--no-baseline",  # the baseline is tested on the shared search; this test is about resuming
    ]
    env = child_env()
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and first.poll() is None and not _finished_trial_runs(uri):
            time.sleep(1)
        assert first.poll() is None, (
            f"the search ended before it could be killed: {(tmp_path / 'first.log').read_text()[-3000:]}"
        )
        done_before = _finished_trial_runs(uri)
        assert done_before, "no trial finished within 10 minutes"
        time.sleep(3)  # let Tune write its experiment state after the trial
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started
        first.wait()
    time.sleep(2)

    second = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    after = _finished_trial_runs(uri)
    for trial_id, run_id in done_before.items():
        assert after[trial_id] == run_id  # the finished trial kept its run, and has no second one
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("mscm")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.ray_trial_id != ''")
    finished = [r.data.tags["ray_trial_id"] for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == TRIALS, finished
    # A trial cut off before Tune recorded it is closed as interrupted, never left RUNNING.
    others = [r for r in runs if r.info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" and r.data.tags.get(STATUS_TAG) == "interrupted" for r in others)
    study = optuna.load_study(study_name="resumable", storage=optuna_url)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == TRIALS, states
    assert optuna.trial.TrialState.RUNNING not in states
