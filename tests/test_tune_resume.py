"""A search whose driver and Ray are both gone (the driver's process group killed: as when the head node
is lost, issue 24) continues with the resume command it printed at its start, on a fresh Ray: finished
trials are kept and their MLflow runs are not duplicated; the trial cut off mid-run continues its Train
run from its latest checkpoint, in its own MLflow run, with no epoch repeated or missing; no run is left
RUNNING, and the Optuna study ends with every trial."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import child_env
from train_configs import SLOWER, one_knob_space, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TRIALS = 2  # one finishes before the kill, one is cut off mid-run; each costs ~30 s of Ray start-up
EPOCHS = 4  # the cut trial is killed after its first epoch, with three (~4 s each) still to run


def _finished_trial_runs(uri: str) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("mscm")
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id], filter_string="tags.ray_trial_id != ''")
    return {r.data.tags["ray_trial_id"]: r.info.run_id for r in runs if r.info.status == "FINISHED"}


def _cut_trial(uri: str, experiment: Path) -> str | None:
    """A trial still RUNNING with an epoch in MLflow and its id in Tune's saved experiment state (so the
    resumed search knows it): the moment to take the search's driver and Ray away."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mscm")
    if exp is None:
        return None
    state = "".join(p.read_text() for p in experiment.glob("experiment_state*.json"))
    for r in client.search_runs([exp.experiment_id], filter_string="tags.ray_trial_id != ''"):
        if r.info.status == "RUNNING" and r.data.tags["ray_trial_id"] in state:
            if client.get_metric_history(r.info.run_id, "eval/mAP"):
                return r.data.tags["ray_trial_id"]
    return None


def _reports(experiment: Path, trial_id: str) -> list[dict]:
    """What a trial reported to Tune, in order, across both drivers (Tune appends to result.json)."""
    (trial_dir,) = [d for d in experiment.iterdir() if d.is_dir() and trial_id in d.name]
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def test_a_search_that_lost_its_driver_and_ray_resumes_mid_trial_from_its_checkpoint(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = one_knob_space(
        tmp_path / "space.yaml",
        epochs=EPOCHS,
        trials=TRIALS,
        overrides=SLOWER,
        sampler="tpe",
        seed=3,
        max_concurrent_trials=1,
    )
    args = [*tune_command(space, "resumable"), "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray_results")]
    args += ["--optuna-url", optuna_url, "--no-baseline"]  # the baseline is tested on the shared search
    experiment = tmp_path / "ray_results" / "resumable"
    env = child_env()
    log = tmp_path / "first.log"
    first = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 600
        cut = done_before = None
        while time.time() < deadline and first.poll() is None and not (done_before and cut):
            done_before, cut = _finished_trial_runs(uri), _cut_trial(uri, experiment)
            time.sleep(0.5)
        assert first.poll() is None, f"the search ended before it could be killed: {log.read_text()[-3000:]}"
        assert done_before and cut, f"no finished and no running trial within 10 minutes: {log.read_text()[-3000:]}"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started: nothing can print
        first.wait()
    match = re.search(r"resume it with: (mscm tune --resume .*)$", log.read_text(), re.MULTILINE)
    assert match, log.read_text()[-3000:]  # printed at the start, since nothing is printed at such an end
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (cut_run,) = client.search_runs(
        [client.get_experiment_by_name("mscm").experiment_id], filter_string=f"tags.ray_trial_id = '{cut}'"
    )

    second = subprocess.run(
        [sys.executable, "-m", *shlex.split(match.group(1))], env=env, capture_output=True, text=True, timeout=900
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    _assert_resumed(client, uri, optuna_url, experiment, done_before, cut, cut_run.info.run_id)


def _assert_resumed(client, uri, optuna_url, experiment, done_before, cut, cut_run_id) -> None:
    import optuna

    from mscm.tracking.contract import STATUS_TAG

    after = _finished_trial_runs(uri)
    for trial_id, run_id in done_before.items():
        assert after[trial_id] == run_id  # the finished trial kept its run, and has no second one
    assert after[cut] == cut_run_id  # the cut trial's run continued, and ended FINISHED
    resumed = [r["train/resumed_from_epoch"] for r in _reports(experiment, cut) if r.get("train/resumed_from_epoch")]
    assert resumed and resumed[0] >= 1, resumed  # its Train run went on from a checkpoint, not from scratch
    steps = sorted(m.step for m in client.get_metric_history(cut_run_id, "eval/mAP"))
    assert steps == list(range(1, EPOCHS + 1))  # one step per epoch: none repeated, none missing
    runs = client.search_runs(
        [client.get_experiment_by_name("mscm").experiment_id], filter_string="tags.ray_trial_id != ''"
    )
    finished = [r.data.tags["ray_trial_id"] for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == TRIALS, finished
    assert all(r.data.tags.get(STATUS_TAG) == "completed" for r in runs if r.info.status == "FINISHED")
    # A trial cut off before Tune recorded it would be closed as interrupted; none is left RUNNING.
    others = [r for r in runs if r.info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" and r.data.tags.get(STATUS_TAG) == "interrupted" for r in others)
    study = optuna.load_study(study_name="resumable", storage=optuna_url)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == TRIALS, states
    assert optuna.trial.TrialState.RUNNING not in states
