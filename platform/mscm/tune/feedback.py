"""What the Optuna study hears about each trial: multi-fidelity feedback.

Ray's ``OptunaSearch`` tells every trial that ended without error as COMPLETE with its *last* reported
value, and loses the report that ended a trial stopped by the scheduler (docs/stack.md 2.3). To Optuna
an early-epoch score then looks like a final one. :class:`FeedbackOptunaSearch` instead:

- records every epoch's objective as an intermediate value, the last one included;
- tells a trial that ended before its budget (ASHA stopped it) as PRUNED; Optuna then takes its last
  intermediate value, and its samplers weigh pruned trials by how far they got (TPE ranks complete
  trials above pruned ones, and pruned ones by their last step);
- tells a trial that used its whole budget as COMPLETE with its *best* epoch's value: the checkpoint the
  search keeps and promotion reads (the same rule as ``mscm.tracking.trials``);
- leaves failures and multi-objective searches (no intermediates, no early stopping) as Ray tells them.
"""

from __future__ import annotations

import math
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search.optuna import OptunaSearch

TRAINING_ITERATION = "training_iteration"
EPOCH = "epoch"  # what every report carries; a restored trial's report count can fall behind it


def fidelity(result: dict) -> int | None:
    """The epoch a result is about (Tune's report count only for results that carry none)."""
    value = result.get(EPOCH, result.get(TRAINING_ITERATION))
    return None if value is None else int(value)


class FeedbackOptunaSearch(OptunaSearch):
    """``OptunaSearch`` with PRUNED/COMPLETE feedback; ``budget`` is the epochs of a full trial (ASHA's max_t)."""

    def __init__(self, *args: Any, budget: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._budget = int(budget)
        self._reported: dict[str, dict[int, float]] = {}  # trial id -> step -> objective

    def _single(self) -> bool:
        return isinstance(self.metric, str)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if not self._single() or trial_id in self._completed_trials:
            return super().on_trial_result(trial_id, result)
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> None:
        """The epoch's objective as an intermediate value, once per step (Optuna keeps the first)."""
        value, step = result.get(self.metric), fidelity(result)
        if value is None or step is None or not math.isfinite(float(value)):
            return
        seen = self._reported.setdefault(trial_id, {})
        if int(step) in seen:
            return
        seen[int(step)] = float(value)
        try:
            self._ot_trials[trial_id].report(float(value), int(step))
        except UpdateFinishedTrialError:
            # A driver killed after Optuna heard the end but before Tune saved it: on --resume Tune runs the
            # trial's last epochs again. The study already holds its outcome; keep it.
            self._completed_trials.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error or not result or not self._single() or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        import optuna

        self._report(trial_id, result)  # the report that ended a stopped trial reaches Tune's searcher only here
        if trial_id in self._completed_trials:  # the study had it finished already (see _report)
            return
        trial = self._ot_trials[trial_id]
        values = self._reported.get(trial_id)
        if not values:
            return super().on_trial_complete(trial_id, result, error)
        if (fidelity(result) or 0) < self._budget:
            self._ot_study.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
        else:
            best = max(values.values()) if self.mode == "max" else min(values.values())
            self._ot_study.tell(trial, best, state=optuna.trial.TrialState.COMPLETE, skip_if_finished=True)
        self._completed_trials.add(trial_id)
