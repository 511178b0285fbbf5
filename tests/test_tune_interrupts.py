"""Ctrl-C and SIGTERM end a search honestly (issue 23): `mscm tune` run as a user runs it, interrupted by
SIGINT (to its whole process group, as a terminal sends it) during its trial's second epoch, exits 130
and prints the resume command; that command, sent SIGTERM (to its process, as `kill PID` or a scheduler
sends it: SIGTERM to the whole group would also end the local Ray's own processes), exits 143; run once
more, it finishes. The trial's MLflow run is the same one throughout, KILLED while interrupted, FINISHED at the
end, with one step per epoch: none repeated, none missing."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from processes import child_env
from train_configs import SLOWER, one_knob_space, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 6  # each interrupt lands after a new epoch reached MLflow, with epochs (~4 s each) still to run


def _trial_run(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mscm")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.ray_trial_id != ''") if exp else []
    return client, runs


def _steps(uri: str) -> list[int]:
    client, runs = _trial_run(uri)
    return sorted(m.step for r in runs for m in client.get_metric_history(r.info.run_id, "eval/mAP"))


def _interrupt(args, env, uri, log, signum, *, group: bool) -> tuple[int, str]:
    """Run ``args``; once a new epoch is in MLflow send ``signum`` to it (or to its process group)."""
    before = max(_steps(uri), default=0) if os.path.exists(uri[len("sqlite:///") :]) else 0
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline and max(_steps(uri), default=0) <= before:
            time.sleep(0.5)
        assert proc.poll() is None, f"the search ended before the interrupt: {log.read_text()[-3000:]}"
        (os.killpg if group else os.kill)(proc.pid, signum)
        try:
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    return code, log.read_text()


def _resume_args(text: str) -> list[str]:
    match = re.search(r"resume it with: (mscm tune --resume .*)$", text, re.MULTILINE)
    assert match, text[-3000:]
    return [sys.executable, "-m", *shlex.split(match.group(1))]


def test_sigint_then_sigterm_end_with_130_and_143_and_resume_finishes_the_trial(tmp_path):
    import optuna

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = tune_command(
        one_knob_space(tmp_path / "space.yaml", epochs=EPOCHS, overrides=SLOWER),
        "stoppable",
    )
    args += ["--tracking-uri", uri, "--storage-path", str(tmp_path / "ray_results"), "--optuna-url", optuna_url]
    env = child_env()

    code, text = _interrupt([*args, "--no-baseline"], env, uri, tmp_path / "first.log", signal.SIGINT, group=True)
    assert code == 130, text[-3000:]
    assert "interrupted by SIGINT" in text and "promote it with" not in text, text[-3000:]
    client, [run] = _trial_run(uri)
    assert run.info.status == "KILLED" and run.data.tags["mscm.trial_status"] == "interrupted"

    code, text = _interrupt(_resume_args(text), env, uri, tmp_path / "second.log", signal.SIGTERM, group=False)
    assert code == 143, text[-3000:]
    assert "interrupted by SIGTERM" in text, text[-3000:]

    done = subprocess.run(_resume_args(text), env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client, [again] = _trial_run(uri)
    assert again.info.run_id == run.info.run_id  # the same run, continued
    assert again.info.status == "FINISHED" and again.data.tags["mscm.trial_status"] == "completed"
    assert _steps(uri) == list(range(1, EPOCHS + 1))  # one step per epoch: none repeated, none missing
    study = optuna.load_study(study_name="stoppable", storage=optuna_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
