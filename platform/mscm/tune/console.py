"""One compact console line per trial report (Tune's own tables come back with ``--verbose``)."""

from __future__ import annotations

import contextlib
from typing import Any

from ray.tune import Callback

from ..environ import temporary_env
from ..train.report_keys import new_retry

# Tune's new output engine prints a heading, the results folder and a block per failed trial even at
# verbose=0; its legacy engine at verbose=0 prints nothing. Tune reads this variable when fit() starts.
_OUTPUT_ENGINE_ENV = "RAY_AIR_NEW_OUTPUT"


def quiet_tune_output(quiet: bool = True) -> contextlib.AbstractContextManager:
    """Around ``Tuner.fit()``: Tune prints nothing of its own (ProgressLines prints instead)."""
    return temporary_env(_OUTPUT_ENGINE_ENV, "0" if quiet else None)


def trial_label(trials: list, trial) -> str:
    """``t03``: the trial's place in the search's order (Tune keeps its trials in creation order)."""
    return f"t{trials.index(trial):02d}" if trial in trials else str(trial)


def report_line(label: str, result: dict[str, Any], max_epochs: int) -> str:
    parts = [f"{label} epoch {int(result.get('epoch', result.get('training_iteration', 0)))}/{max_epochs}"]
    if "loss/total" in result:
        parts.append(f"loss {result['loss/total']:.3f}")
    if "mAP" in result:
        parts.append(f"mAP {100 * result['mAP']:.1f}%")
    if "perf/images_per_s" in result:
        parts.append(f"{result['perf/images_per_s']:.0f} img/s")
    return "  ".join(parts)


class ProgressLines(Callback):
    """Prints a line per report and one when a trial ends, from the Tune driver."""

    def __init__(self, max_epochs: int):
        self.max_epochs = max_epochs  # no function attributes: Tune pickles its callbacks with the experiment
        self._printed: dict[str, int] = {}  # trial id -> last epoch printed (a resumed trial repeats one)
        self._retries: dict[str, int] = {}  # trial id -> retries already printed

    @staticmethod
    def print_fn(line: str) -> None:
        print(line, flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        epoch = int(result.get("epoch", 0))
        printed = self.__dict__.setdefault("_printed", {})  # absent from callbacks pickled by older versions
        if epoch and epoch <= printed.get(trial.trial_id, 0):
            return
        printed[trial.trial_id] = epoch
        retry = new_retry(self.__dict__.setdefault("_retries", {}), trial.trial_id, result)  # older pickles lack it
        if retry:
            self.print_fn(
                f"{trial_label(trials, trial)} retried ({retry[0]} so far): {retry[1]}; it goes on from its checkpoint"
            )
        self.print_fn(report_line(trial_label(trials, trial), result, self.max_epochs))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        epochs = int((trial.last_result or {}).get("epoch", 0))
        how = "completed" if epochs >= self.max_epochs else f"stopped early after {epochs} epoch{'s' * (epochs != 1)}"
        self.print_fn(f"{trial_label(trials, trial)} {how}")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.print_fn(f"{trial_label(trials, trial)} failed (its MLflow run has the error)")
