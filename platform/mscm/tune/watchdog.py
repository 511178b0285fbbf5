"""The search watches itself: a running trial that has stopped reporting is named on the console, and may
be failed so that the search goes on.

"Silent" is relative to the search's own pace: a trial is silent once it has gone ``factor`` times the
slowest gap between two reports seen so far (one epoch, with its evaluation and checkpoint) without a
report, and at least ``floor_s``. Only trials that have reported once are watched: before its first report
a trial may wait for a node (a spot GPU worker takes minutes to join), which is not a hang.
"""

from __future__ import annotations

import time

from ray.tune import Callback

from .console import trial_label

FLOOR_S = 60.0  # below this, a pause is noise (a checkpoint upload, a busy driver)


class SilenceWatch(Callback):
    def __init__(self, factor: float, fail: bool = False, floor_s: float = FLOOR_S):
        self.factor, self.fail, self.floor_s = factor, fail, floor_s
        self._reset()

    def _reset(self) -> None:
        self._last: dict[str, float] = {}  # trial id -> monotonic time of its last report
        self._slowest = 0.0
        self._named: set[str] = set()  # trials already named for this silence

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into the experiment state; clock readings mean nothing in a resumed process.
        return {"factor": self.factor, "fail": self.fail, "floor_s": self.floor_s}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    @staticmethod
    def print_fn(line: str) -> None:
        print(line, flush=True)

    def limit_s(self) -> float | None:
        """How long a watched trial may be silent; None until a gap between two reports was seen."""
        return max(self.factor * self._slowest, self.floor_s) if self._slowest else None

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        now = time.monotonic()
        if trial.trial_id in self._last:
            self._slowest = max(self._slowest, now - self._last[trial.trial_id])
        self._last[trial.trial_id] = now
        self._named.discard(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._last.pop(trial.trial_id, None)

    on_trial_error = on_trial_complete

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        limit, now = self.limit_s(), time.monotonic()
        if limit is None:
            return
        for trial in trials:
            last = self._last.get(trial.trial_id)
            if last is None or trial.status != "RUNNING" or trial.trial_id in self._named:
                continue
            silent = now - last
            if silent > limit:
                self._named.add(trial.trial_id)
                self._speak(trials, trial, silent, limit)

    def _speak(self, trials: list, trial, silent: float, limit: float) -> None:
        import ray

        what = "failing it (--fail-silent)" if self.fail else "--fail-silent would fail it"
        self.print_fn(
            f"{trial_label(trials, trial)} has not reported for {silent:.0f} s (limit {limit:.0f} s: {self.factor:g}x "
            f"the slowest epoch seen, {self._slowest:.0f} s); {what}"
        )
        actor = trial.temporary_state.ray_actor
        if self.fail and actor is not None:
            ray.kill(actor)  # Tune sees the trial's actor die: the trial ends in ERROR and the search goes on


__all__ = ["SilenceWatch", "FLOOR_S"]
