"""The candidate of a search: its best trial, read back from MLflow as the search logged it.

A search is one parent run tagged ``mscm.search=<name>``, ``mscm.kind=search``, with one nested run
per trial (tag ``ray_trial_id``). A trial is ranked by the metrics of its *best* checkpoint
(``best/<metric>``, logged from that checkpoint's metrics.json), not by its last report; trials that
failed or left no best checkpoint are not candidates.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import METRICS_FILE, MODEL_FILE
from ..errors import RegistryError
from ..tracking.contract import CHECKPOINT_TAG, SCORE_TAG, SEARCH_TAG, STATUS_TAG, TRIAL_TAG, search_filter

CHECKPOINT_ARTIFACT = "best_checkpoint"


class SelectionError(RegistryError, LookupError):
    """No search of that name, or no trial in it that can be promoted."""


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
    score: float  # the ranking value: best/<metric>, else the best_score tag
    ranked_by: str
    checkpoint_path: str | None  # the best_checkpoint tag (a local or shared filesystem path)
    best_metrics: dict[str, float] = field(default_factory=dict)


def find_search(client, name: str, experiment: str | None = None) -> SearchRef:
    """The parent run of the search ``name`` (in ``experiment``, or in any experiment)."""
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise SelectionError(f"no MLflow experiment named {experiment!r} in {client.tracking_uri}")
        exp_ids = [exp.experiment_id]
    else:
        exp_ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        exp_ids, filter_string=search_filter(name), max_results=10,
    ) if exp_ids else []
    if not runs:
        raise SelectionError(f"no search named {name!r} in {client.tracking_uri} "
                             f"(a search's parent run is tagged {SEARCH_TAG}={name})")
    if len({r.info.experiment_id for r in runs}) > 1:
        raise SelectionError(f"searches named {name!r} exist in several experiments; pass --experiment")
    run = runs[0]
    return SearchRef(name, run.info.run_id, run.info.experiment_id)


def trial_runs(client, search: SearchRef) -> list:
    """Every trial run of a search (nested runs carrying a Ray trial id)."""
    runs = client.search_runs(
        [search.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{search.run_id}'", max_results=10000,
    )
    return [r for r in runs if TRIAL_TAG in r.data.tags]


def _ranking_value(run, metric: str) -> tuple[float, str] | None:
    value = run.data.metrics.get(f"best/{metric}")
    if value is not None and math.isfinite(value):
        return float(value), f"best/{metric}"
    tag = run.data.tags.get(SCORE_TAG)
    try:
        score = float(tag) if tag is not None else None
    except ValueError:
        score = None
    return (score, SCORE_TAG) if score is not None and math.isfinite(score) else None


def select_trial(client, search: SearchRef, metric: str, trial_id: str | None = None) -> TrialChoice:
    """The best trial of ``search`` by ``best/<metric>`` (or the one named ``trial_id``)."""
    runs = trial_runs(client, search)
    if not runs:
        raise SelectionError(f"search {search.name!r} has no trial runs")
    if trial_id is not None:
        runs = [r for r in runs if r.data.tags[TRIAL_TAG] == trial_id]
        if not runs:
            raise SelectionError(f"search {search.name!r} has no trial {trial_id!r}")
    ranked = []
    skipped = []
    for r in runs:
        tags = r.data.tags
        value = _ranking_value(r, metric)
        if tags.get(STATUS_TAG) == "failed":
            skipped.append(f"{tags[TRIAL_TAG]} (failed)")
        elif not tags.get(CHECKPOINT_TAG):
            skipped.append(f"{tags[TRIAL_TAG]} (no best checkpoint)")
        elif value is None:
            skipped.append(f"{tags[TRIAL_TAG]} (no best/{metric} metric or best_score tag)")
        else:
            ranked.append((value, r))
    if not ranked:
        raise SelectionError(f"search {search.name!r}: no trial can be promoted: " + "; ".join(skipped))
    # Highest value; on a tie the trial that started first (deterministic).
    (score, ranked_by), run = max(ranked, key=lambda vr: (vr[0][0], -vr[1].info.start_time, vr[1].info.run_id))
    tags = run.data.tags
    best = {k[len("best/"):]: v for k, v in run.data.metrics.items() if k.startswith("best/")}
    return TrialChoice(search, run.info.run_id, tags[TRIAL_TAG], tags.get(STATUS_TAG, "unknown"), score,
                       ranked_by, tags.get(CHECKPOINT_TAG), best)


def checkpoint_dir(client, choice: TrialChoice, scratch: str | Path | None = None) -> Path:
    """The trial's best checkpoint folder: its filesystem path when this machine sees it, else the
    copy the search uploaded as the run's ``best_checkpoint/`` artifact (downloaded to ``scratch``)."""
    path = choice.checkpoint_path
    if path and os.path.isfile(os.path.join(path, MODEL_FILE)):
        return Path(path)
    from .source import ModelSourceError, download

    scratch = Path(scratch or tempfile.mkdtemp(prefix="mscm-candidate-"))
    try:
        local = download(f"runs:/{choice.run_id}/{CHECKPOINT_ARTIFACT}", scratch, client.tracking_uri,
                         f"trial {choice.trial_id}: its {CHECKPOINT_ARTIFACT}/ artifact")
    except ModelSourceError as e:
        raise SelectionError(f"the best checkpoint {path!r} is not on this machine and {e}") from None
    if not os.path.isfile(os.path.join(local, MODEL_FILE)):
        raise SelectionError(f"trial {choice.trial_id}: the {CHECKPOINT_ARTIFACT}/ artifact of run {choice.run_id} "
                             f"has no {MODEL_FILE}")
    return Path(local)


def checkpoint_files(directory: str | Path) -> list[Path]:
    """What a promotion keeps of a checkpoint: the model and its metrics (not the optimiser state)."""
    directory = Path(directory)
    return [p for p in (directory / MODEL_FILE, directory / METRICS_FILE) if p.is_file()]

