"""Warm-start a search from an earlier Optuna study in the same storage.

Ray's ``OptunaSearch(points_to_evaluate=..., evaluated_rewards=...)`` refuses define-by-run spaces (a
``TypeError`` in ``add_evaluated_point``), and our spaces are define-by-run (conditional parameters).
So the finished trials of the earlier study, COMPLETE and PRUNED (with their per-epoch intermediate
values, mscm.tune.feedback), are copied into the new study before the searcher opens it: the sampler
(TPE's start-up count included) then treats them as observations, and none is re-run.

A trial is copied only if this space could have sampled it: the same parameters, active under this
space's conditions, each value inside this space's distribution. Everything else is skipped and counted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import optuna

from ..errors import TrackingError
from .space import SearchSpace

WARM_START_ATTR = "mscm.warm_start_from"


@dataclass(frozen=True)
class WarmStart:
    source: str
    copied: int
    skipped: int

    def describe(self) -> str:
        return f"warm start from study {self.source!r}: {self.copied} completed trials copied" + (
            f", {self.skipped} skipped (not a sample of this space)" if self.skipped else ""
        )


def _as_sample(space: SearchSpace, params: dict) -> optuna.trial.FixedTrial | None:
    """The trial replayed through this space's define-by-run, or None where the space could not have drawn it."""
    fixed = optuna.trial.FixedTrial(params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-range values are caught below, with a reason
            space.define_by_run(fixed)
    except ValueError:  # a parameter the old trial lacks, or a categorical value not among the choices
        return None
    if set(fixed.params) != set(params):  # the old trial had parameters this space does not (now) sample
        return None
    for key, dist in fixed.distributions.items():
        try:
            if not dist._contains(dist.to_internal_repr(params[key])):
                return None
        except (ValueError, TypeError):
            return None
    return fixed


def warm_start_study(storage: optuna.storages.BaseStorage, source: str, target: str, space: SearchSpace) -> WarmStart:
    """Copy the completed trials of study ``source`` that ``space`` could have sampled into study ``target``
    (created here with the space's directions). Errors name the study; nothing is written on error."""
    try:
        old = optuna.load_study(study_name=source, storage=storage)
    except KeyError as e:
        raise TrackingError(f"warm start: no study named {source!r} in the Optuna storage") from e
    old_dirs = [d.name.lower() for d in old.directions]
    new_dirs = [d.lower() for d in space.directions]
    if old_dirs != new_dirs:
        raise TrackingError(f"warm start: study {source!r} optimises {old_dirs}, this search {new_dirs}")
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    completed = old.get_trials(deepcopy=False, states=finished)
    if not completed:
        raise TrackingError(f"warm start: study {source!r} has no completed trials (COMPLETE or PRUNED)")

    copies = []
    for t in completed:
        sample = _as_sample(space, dict(t.params))
        if sample is None:
            continue
        copies.append(
            optuna.trial.create_trial(
                state=t.state,
                params=sample.params,
                distributions=sample.distributions,
                values=list(t.values) if t.values else None,
                intermediate_values=dict(t.intermediate_values),
                user_attrs={WARM_START_ATTR: f"{source}#{t.number}"},
            )
        )
    if not copies:
        raise TrackingError(
            f"warm start: none of the {len(completed)} completed trials of study {source!r} "
            "is a sample of this search space (parameters, conditions or ranges differ)"
        )
    study = optuna.create_study(study_name=target, storage=storage, directions=new_dirs, load_if_exists=True)
    if study.trials:
        raise TrackingError(f"warm start: study {target!r} already has trials; warm-start only a new search")
    study.add_trials(copies)
    return WarmStart(source=source, copied=len(copies), skipped=len(completed) - len(copies))
