"""A search stopped three ways ends honestly each time and resumes with the command it printed (issues 23
and 24). One search of two trials, one at a time, run as a user runs `mscm tune`:

1. SIGINT to its whole process group (as a terminal sends Ctrl-C) once the first trial has finished and
   the second has an epoch in MLflow: exit 130, "interrupted by SIGINT", the cut trial's run KILLED;
2. its resume command, sent SIGTERM (to its process, as `kill PID` or a scheduler sends it: SIGTERM to the
   whole group would also end the local Ray's own processes) after a new epoch: exit 143;
3. its resume command again, its whole process group killed with SIGKILL after a new epoch (the driver
   and the local Ray it started are gone, as when the head node is lost): nothing can print, so the resume
   command is the one printed at its start;
4. that command finishes the search on a fresh Ray.

The finished trial keeps its run; the cut trial's MLflow run is the same one throughout, its Train run goes
on from its latest checkpoint each time, with one step per epoch: none repeated, none missing. No run is
left RUNNING and the Optuna study ends with every trial COMPLETE.

The stops share one search because each `mscm tune` start costs a Ray start and a Train run (about 30
CPU-s here, docs/benchmarks.md); each test below asserts on the stage it is about."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from processes import child_env
from train_configs import SLOWER, one_knob_space, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TRIALS = 2  # one finishes before the first stop, one is cut by all three
# Each stop lands after a new epoch of the cut trial reached MLflow, and a stop may let one more epoch
# through (~4 s each): at most 2 x 3 = 6 epochs before the last stop, so one is always left to resume.
EPOCHS = 7
NAME = "stoppable"


@dataclass
class Stage:
    code: int
    console: str
    steps: list[int] = field(default_factory=list)  # the cut trial's MLflow steps once the stage ended
    status: tuple[str, str] = ("", "")  # the cut trial's run status and mscm.trial_status tag then


@dataclass
class StoppedSearch:
    uri: str
    optuna_url: str
    experiment: Path
    done_before: dict[str, str]  # trial id -> MLflow run id of the trials FINISHED before the first stop
    cut: str  # the trial id cut by every stop
    cut_run_id: str
    stages: dict[str, Stage]


def _trial_runs(uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mscm") if os.path.exists(uri[len("sqlite:///") :]) else None
    return client.search_runs([exp.experiment_id], filter_string="tags.ray_trial_id != ''") if exp else []


def _finished_trial_runs(uri: str) -> dict[str, str]:
    return {r.data.tags["ray_trial_id"]: r.info.run_id for r in _trial_runs(uri) if r.info.status == "FINISHED"}


def _steps(uri: str, run_id: str) -> list[int]:
    from mlflow import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, "eval/mAP"))


def _cut_trial(uri: str, experiment: Path) -> tuple[str, str] | None:
    """(trial id, run id) of a trial still RUNNING with an epoch in MLflow and its id in Tune's saved
    experiment state (so a resumed search knows it, even after a SIGKILL)."""
    state = "".join(p.read_text() for p in experiment.glob("experiment_state*.json"))
    for r in _trial_runs(uri):
        trial_id = r.data.tags["ray_trial_id"]
        if r.info.status == "RUNNING" and trial_id in state and _steps(uri, r.info.run_id):
            return trial_id, r.info.run_id
    return None


def _cut_state(uri: str, run_id: str) -> dict:
    """What a stage leaves of the cut trial's run: its steps and its (status, trial status)."""
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    return {"steps": _steps(uri, run_id), "status": (run.info.status, run.data.tags.get("mscm.trial_status", ""))}


def _stop_when(args, log: Path, ready, signum: int, *, group: bool) -> tuple[int, str]:
    """Run ``args`` in a new session; once ``ready()`` holds send ``signum`` to it (or to its group)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=child_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline and not ready():
            time.sleep(0.5)
        assert proc.poll() is None, f"the search ended before the stop: {log.read_text()[-3000:]}"
        assert ready(), f"nothing to stop for within 10 minutes: {log.read_text()[-3000:]}"
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


def _run_first_stage(tmp: Path, uri: str, optuna_url: str) -> tuple[Stage, dict[str, str], tuple[str, str]]:
    space = one_knob_space(
        tmp / "space.yaml",
        epochs=EPOCHS,
        trials=TRIALS,
        overrides=SLOWER,
        sampler="tpe",
        seed=3,
        max_concurrent_trials=1,
    )
    args = [*tune_command(space, NAME), "--tracking-uri", uri, "--storage-path", str(tmp / "ray_results")]
    args += ["--optuna-url", optuna_url, "--no-baseline"]  # the baseline is tested on the shared search
    seen: dict = {}

    def ready() -> bool:
        seen["done"], seen["cut"] = _finished_trial_runs(uri), _cut_trial(uri, tmp / "ray_results" / NAME)
        return bool(seen["done"] and seen["cut"])

    code, text = _stop_when(args, tmp / "first.log", ready, signal.SIGINT, group=True)
    return Stage(code, text, **_cut_state(uri, seen["cut"][1])), seen["done"], seen["cut"]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> StoppedSearch:
    tmp = tmp_path_factory.mktemp("stops")
    uri, optuna_url = f"sqlite:///{tmp / 'mlflow.db'}", f"sqlite:///{tmp / 'optuna.db'}"
    first, done_before, (cut, cut_run_id) = _run_first_stage(tmp, uri, optuna_url)
    stages = {"sigint": first}
    previous = first
    for name, signum, group in (("sigterm", signal.SIGTERM, False), ("lost", signal.SIGKILL, True)):
        before = max(previous.steps, default=0)
        code, text = _stop_when(
            _resume_args(previous.console),
            tmp / f"{name}.log",
            lambda before=before: max(_steps(uri, cut_run_id), default=0) > before,
            signum,
            group=group,
        )
        previous = stages[name] = Stage(code, text, **_cut_state(uri, cut_run_id))
    done = subprocess.run(_resume_args(previous.console), env=child_env(), capture_output=True, text=True, timeout=900)
    stages["resumed"] = Stage(done.returncode, done.stdout + done.stderr, **_cut_state(uri, cut_run_id))
    return StoppedSearch(uri, optuna_url, tmp / "ray_results" / NAME, done_before, cut, cut_run_id, stages)


def test_sigint_ends_with_130_and_leaves_the_cut_trials_run_killed(stopped):
    first = stopped.stages["sigint"]
    assert first.code == 130, first.console[-3000:]
    assert "interrupted by SIGINT" in first.console and "promote it with" not in first.console, first.console[-3000:]
    assert first.status == ("KILLED", "interrupted")
    # Its state once the SIGINT stage ended, as the stage recorded it: steps so far, none twice.
    assert first.steps == list(range(1, len(first.steps) + 1)) and len(first.steps) < EPOCHS
    assert len(stopped.done_before) == 1  # the first trial had finished before the stop


def test_sigterm_to_the_resumed_search_ends_with_143_and_the_same_run_goes_on(stopped):
    second = stopped.stages["sigterm"]
    assert second.code == 143, second.console[-3000:]
    assert "interrupted by SIGTERM" in second.console, second.console[-3000:]
    assert second.status == ("KILLED", "interrupted")  # KILLED again, not left RUNNING
    assert stopped.stages["resumed"].status == ("FINISHED", "completed")  # the same run, continued
    assert len(stopped.stages["sigint"].steps) < len(second.steps) < EPOCHS  # the resume trained on


def test_a_search_that_lost_its_driver_and_ray_resumes_mid_trial_from_its_checkpoint(stopped):
    lost, resumed = stopped.stages["lost"], stopped.stages["resumed"]
    assert lost.code == -signal.SIGKILL
    assert len(lost.steps) < EPOCHS, lost.steps  # killed mid-trial, with epochs left to run
    assert resumed.code == 0, resumed.console[-3000:]
    reports = _reports(stopped.experiment, stopped.cut)
    froms = [r["train/resumed_from_epoch"] for r in reports if r.get("train/resumed_from_epoch")]
    assert froms and froms[0] >= 1, froms  # its Train run went on from a checkpoint, not from scratch
    assert max(froms) >= len(lost.steps), froms  # ... after the kill too, from the latest one


def test_resume_finishes_every_trial_in_its_own_run_with_each_epoch_once(stopped):
    import optuna

    from mscm.tracking.contract import STATUS_TAG

    after = _finished_trial_runs(stopped.uri)
    for trial_id, run_id in stopped.done_before.items():
        assert after[trial_id] == run_id  # the finished trial kept its run, and has no second one
    assert after[stopped.cut] == stopped.cut_run_id  # the cut trial's run continued, and ended FINISHED
    for run_id in after.values():  # one step per epoch: none repeated, none missing
        assert _steps(stopped.uri, run_id) == list(range(1, EPOCHS + 1))
    runs = _trial_runs(stopped.uri)
    finished = [r.data.tags["ray_trial_id"] for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == TRIALS, finished
    assert all(r.data.tags.get(STATUS_TAG) == "completed" for r in runs if r.info.status == "FINISHED")
    # A trial cut off before Tune recorded it would be closed as interrupted; none is left RUNNING.
    others = [r for r in runs if r.info.status != "FINISHED"]
    assert all(r.info.status == "KILLED" and r.data.tags.get(STATUS_TAG) == "interrupted" for r in others)
    study = optuna.load_study(study_name=NAME, storage=stopped.optuna_url)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * TRIALS


def _reports(experiment: Path, trial_id: str) -> list[dict]:
    """What a trial reported to Tune, in order, across all drivers (Tune appends to result.json)."""
    (trial_dir,) = [d for d in experiment.iterdir() if d.is_dir() and trial_id in d.name]
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
