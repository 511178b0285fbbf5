"""Reading a search back from MLflow: its parent run, its trial runs, and its best trial.

This is the one rule for "the best trial", used by the search's own summary and by promotion:
the highest ``best/<metric>`` (the figure of the trial's best checkpoint, never its last report),
among trials that did not fail; on a tie the trial that started first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import TrackingError
from .contract import CHECKPOINT_TAG, CONFIRM_TAG, MODEL_URI_TAG, SEARCH_TAG, STATUS_TAG, TRIAL_TAG, search_filter
from .metrics import best_figures, best_key


class SelectionError(TrackingError, LookupError):
    """No search of that name, or no trial in it that can be chosen."""


@dataclass(frozen=True)
class SearchRef:
    name: str
    run_id: str
    experiment_id: str


@dataclass(frozen=True)
class TrialChoice:
    search: SearchRef
    run_id: str
    trial_id: str
    status: str
    score: float  # best/<metric> of the trial
    ranked_by: str  # "best/<metric>"
    checkpoint_path: str | None  # its best Ray checkpoint (tag best_checkpoint), where the search ran
    model_uri: str | None  # its logged inference model (tag model_uri)
    best_metrics: dict[str, float] = field(default_factory=dict)
    run_name: str = ""


def find_search(client, name: str, experiment: str | None = None) -> SearchRef:
    """The parent run of the search ``name`` (in ``experiment``, or in any experiment)."""
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise SelectionError(f"no MLflow experiment named {experiment!r} in {client.tracking_uri}")
        exp_ids = [exp.experiment_id]
    else:
        exp_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exp_ids, filter_string=search_filter(name), max_results=10) if exp_ids else []
    if not runs:
        raise SelectionError(
            f"no search named {name!r} in {client.tracking_uri} (a search's parent run is tagged {SEARCH_TAG}={name})"
        )
    if len({r.info.experiment_id for r in runs}) > 1:
        raise SelectionError(f"searches named {name!r} exist in several experiments; pass --experiment")
    run = runs[0]
    return SearchRef(name, run.info.run_id, run.info.experiment_id)


def _nested_runs(client, search: SearchRef) -> list:
    runs = client.search_runs(
        [search.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{search.run_id}'",
        max_results=10000,
    )
    return [r for r in runs if TRIAL_TAG in r.data.tags]


def trial_runs(client, search: SearchRef) -> list:
    """Every trial run of a search (nested runs carrying a Ray trial id), confirmation runs excluded."""
    return [r for r in _nested_runs(client, search) if CONFIRM_TAG not in r.data.tags]


def confirmation_runs(client, search: SearchRef) -> list:
    """The runs of ``mscm confirm`` under the search: each re-trains one trial's configuration with a new seed."""
    return [r for r in _nested_runs(client, search) if CONFIRM_TAG in r.data.tags]


def _choice(search: SearchRef, run, score: float, ranked_by: str) -> TrialChoice:
    tags = run.data.tags
    return TrialChoice(
        search,
        run.info.run_id,
        tags[TRIAL_TAG],
        tags.get(STATUS_TAG, "unknown"),
        score,
        ranked_by,
        tags.get(CHECKPOINT_TAG),
        tags.get(MODEL_URI_TAG),
        best_figures(run.data.metrics),
        run.info.run_name or "",
    )


def ranked_trials(client, search: SearchRef, metric: str) -> tuple[list[TrialChoice], list[str]]:
    """The trials that can be chosen, best first, and why each other trial cannot."""
    key = best_key(metric)
    ranked, skipped = [], []
    for run in trial_runs(client, search):
        tags = run.data.tags
        value = run.data.metrics.get(key)
        if tags.get(STATUS_TAG) == "failed":
            skipped.append(f"{tags[TRIAL_TAG]} (failed)")
        elif value is None or not math.isfinite(value):
            skipped.append(f"{tags[TRIAL_TAG]} (no {key})")
        else:
            ranked.append((float(value), -run.info.start_time, run.info.run_id, run))
    ranked.sort(key=lambda item: item[:3], reverse=True)
    return [_choice(search, run, value, key) for value, _, _, run in ranked], skipped


def select_trial(client, search: SearchRef, metric: str, trial_id: str | None = None) -> TrialChoice:
    """The best trial of ``search`` by ``best/<metric>`` (or the one named ``trial_id``)."""
    ranked, skipped = ranked_trials(client, search, metric)
    if trial_id is not None:
        ranked = [c for c in ranked if c.trial_id == trial_id]
        skipped = [s for s in skipped if s.split(" ", 1)[0] == trial_id]
        if not ranked and not skipped:
            raise SelectionError(f"search {search.name!r} has no trial {trial_id!r}")
    if not ranked:
        if not skipped:
            raise SelectionError(f"search {search.name!r} has no trial runs")
        raise SelectionError(f"search {search.name!r}: no trial can be chosen: " + "; ".join(skipped))
    return ranked[0]


def trial_statuses(client, search: SearchRef) -> list[str]:
    """The status tag of every trial run of a search (``unknown`` where a run has none yet)."""
    return [r.data.tags.get(STATUS_TAG, "unknown") for r in trial_runs(client, search)]
