"""The search watches itself (mscm.tune.watchdog): a running trial silent for longer than its multiple of
the slowest epoch seen is named once, and with --fail-silent its real Ray actor is killed, so that Tune
ends that trial and the search goes on. The trials here are stand-ins holding what Tune's Trial exposes
to a callback (id, status, its actor); the actor is a real one on the session's local Ray."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from mscm.tune.watchdog import SilenceWatch

pytestmark = pytest.mark.ray


def _trial(trial_id: str, actor=None):
    return SimpleNamespace(trial_id=trial_id, status="RUNNING", temporary_state=SimpleNamespace(ray_actor=actor))


def _watch(fail: bool, lines: list[str]) -> SilenceWatch:
    watch = SilenceWatch(factor=3, fail=fail, floor_s=0.5)
    watch.print_fn = lines.append
    return watch


def test_a_silent_trial_is_named_once_and_a_reporting_one_never(local_ray):
    lines: list[str] = []
    watch = _watch(False, lines)
    quiet, busy = _trial("a"), _trial("b")
    trials = [quiet, busy]
    for t in trials:
        watch.on_trial_result(0, trials, t, {})
    time.sleep(0.3)  # one epoch of 0.3 s each: the limit is max(3 x 0.3, 0.5) = 0.9 s
    for t in trials:
        watch.on_trial_result(0, trials, t, {})
    assert watch.limit_s() == pytest.approx(0.9, abs=0.2)
    for step in range(50):  # 2.5 s of Tune steps; "b" reports about every 0.2 s, "a" never again
        if step % 4 == 0:
            watch.on_trial_result(0, trials, busy, {})
        watch.on_step_begin(0, trials)
        time.sleep(0.05)
    assert len(lines) == 1 and lines[0].startswith("t00 has not reported for "), lines
    assert "--fail-silent would fail it" in lines[0]


def test_fail_silent_kills_the_trials_actor(local_ray):
    import ray

    @ray.remote(num_cpus=0)
    class Stuck:
        def ping(self) -> str:
            return "alive"

    actor = Stuck.remote()
    assert ray.get(actor.ping.remote()) == "alive"
    lines: list[str] = []
    watch = _watch(True, lines)
    trial = _trial("a", actor)
    watch.on_trial_result(0, [trial], trial, {})
    time.sleep(0.2)
    watch.on_trial_result(0, [trial], trial, {})
    time.sleep(1.0)
    watch.on_step_begin(0, [trial])
    assert "failing it (--fail-silent)" in lines[0], lines
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.ping.remote(), timeout=30)


def test_the_watch_pickles_without_its_clock_readings():
    watch = SilenceWatch(factor=4, fail=True)
    trial = _trial("a")
    watch.on_trial_result(0, [trial], trial, {})
    back = pickle.loads(pickle.dumps(watch))
    assert (back.factor, back.fail, back.limit_s(), back._last) == (4, True, None, {})


def test_a_silence_factor_of_one_or_less_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mscm", "tune", "--silence-factor", "1"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--silence-factor" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
