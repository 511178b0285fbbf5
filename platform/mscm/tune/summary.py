"""The end of a search, once every trial's MLflow writes are in: close the runs and Optuna trials the
search lost track of, and put the summary on the parent run (trials.csv, best_trial.json, the
study's plots, the best trial's metrics and tags).

It needs no Ray: the Tune table of the trials is a CSV in the search's spool (:func:`save_trial_table`),
so ``mscm sync`` finishes a search whose store was away when it ended exactly as the search would
have. :class:`SearchRecord` is what it reads of the search, saved beside that table.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..tracking.contract import SAMPLED_TAG, SPLIT_TAG, STATUS_TAG, TRIAL_TAG

RECORD_FILE = "search.json"
TABLE_FILE = "trials.csv"


@dataclass(frozen=True)
class SearchRecord:
    name: str
    tracking_uri: str
    optuna_url: str
    experiment: str
    selection_metric: str
    metric: Any  # the objective: a name, or a list of names for a multi-objective search

    def save(self, folder: Path) -> None:
        from ..redact import redact_values  # a file on shared storage: `mscm sync` takes the URLs again

        (folder / RECORD_FILE).write_text(json.dumps(redact_values(asdict(self)), indent=1))

    @classmethod
    def load(cls, folder: Path) -> SearchRecord:
        return cls(**json.loads((folder / RECORD_FILE).read_text()))


def trial_table(results):
    """Tune's table of the trials, with a row for each trial that failed before it reported."""
    df = results.get_dataframe()
    failed_rows = [
        {
            "trial_id": r.metrics.get("trial_id") if r.metrics else None,
            "status": "ERROR",
            "error": str(r.error).strip().splitlines()[-1][:300] if str(r.error).strip() else type(r.error).__name__,
        }
        for r in results
        if r.error is not None
    ]
    if failed_rows:
        import pandas as pd

        df = pd.concat([df, pd.DataFrame(failed_rows)], ignore_index=True)
    return df


def save_trial_table(results, folder: Path) -> Path:
    path = folder / TABLE_FILE
    trial_table(results).to_csv(path, index=False)
    return path


def known_trials(table_csv: Path) -> set[str]:
    """The trial ids in a saved trial table (none when Tune knew of no trial: an empty table)."""
    import pandas as pd

    try:
        table = pd.read_csv(table_csv)
    except pd.errors.EmptyDataError:
        return set()
    return {str(t) for t in table["trial_id"].dropna()} if "trial_id" in table else set()


def kill_running_runs(parent, spare: set[str] = frozenset()) -> list[str]:
    """The parent's trial runs still RUNNING (but those of the trials in ``spare``): tagged "interrupted"
    and ended KILLED, so none stays RUNNING (a resumed search opens them again). Returns their names."""
    from ..tracking.mlflow_run import terminate

    client = parent.client
    runs = client.search_runs(
        [parent.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'", max_results=10000
    )
    killed = []
    for run in runs:
        if run.info.status == "RUNNING" and run.data.tags.get(TRIAL_TAG) not in spare:
            client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
            terminate(client, run.info.run_id, "KILLED")
            killed.append(run.info.run_name)
    return sorted(killed)


def close_orphans(record: SearchRecord, parent, known: set[str]) -> None:
    """Trials that were running when the driver died but had not reached Tune's experiment state are
    unknown to a resumed search (it samples replacements). Close their MLflow runs as KILLED (status
    "interrupted") and their Optuna trials as FAIL, so neither stays RUNNING."""
    import optuna

    kill_running_runs(parent, spare=known)
    study = optuna.load_study(study_name=record.name, storage=record.optuna_url)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def summarise(record: SearchRecord, parent, table_csv: Path) -> dict[str, Any]:
    """Trial table, Optuna plots and the best trial's summary (:mod:`mscm.tracking.trials`), on the parent
    run; returns best_trial.json's content."""
    from ..tracking.metrics import search_summary
    from ..tracking.trials import SearchRef, trial_statuses

    client = parent.client
    search = SearchRef(record.name, parent.run_id, parent.experiment_id)
    summary, best_metrics = best_summary(client, search, record.selection_metric)
    pareto = _log_search_files(parent, table_csv, summary, record)
    parent.log_metrics(search_summary(best_metrics, trial_statuses(client, search)), step=0)
    tags = {} if isinstance(record.metric, str) else {"pareto_trials": len(pareto)}
    if summary.get("trial_id"):
        tags.update({"best_trial_id": summary["trial_id"], "best_run_id": summary["run_id"]})
    parent.set_tags(tags)
    return summary


def _log_search_files(parent, table_csv: Path, summary: dict[str, Any], record: SearchRecord) -> list:
    """trials.csv, best_trial.json, the study's plots and (multi-objective) its Pareto front; returns the front."""
    from .report import pareto_front, search_plots

    single = isinstance(record.metric, str)
    names = [record.metric] if single else list(record.metric)
    pareto = [] if single else pareto_front(record.optuna_url, record.name, names)
    parent.log_artifact(table_csv, "search")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "best_trial.json").write_text(json.dumps(summary, indent=2, default=str))
        parent.log_artifact(Path(tmp, "best_trial.json"), "search")
        for png in search_plots(record.optuna_url, record.name, Path(tmp), objective_names=names):
            parent.log_artifact(png, "search/plots")
        if pareto:
            import pandas as pd

            pd.DataFrame(pareto).to_csv(Path(tmp, "pareto_front.csv"), index=False)
            parent.log_artifact(Path(tmp, "pareto_front.csv"), "search")
    return pareto


def best_summary(client, search, selection_metric: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The best trial by the one rule (:func:`mscm.tracking.trials.select_trial`): its summary for
    best_trial.json, and its run's metrics for the parent run."""
    from ..tracking.trials import SelectionError, select_trial

    try:
        top = select_trial(client, search, selection_metric)
    except SelectionError:
        return {"search": search.name, "trial_id": None}, {}
    run = client.get_run(top.run_id)
    sampled = run.data.tags.get(SAMPLED_TAG, "")
    return {
        "search": search.name,
        "trial_id": top.trial_id,
        "run_id": top.run_id,
        "run_name": top.run_name,
        "checkpoint": top.checkpoint_path,
        "model_uri": top.model_uri,
        "ranked_by": top.ranked_by,
        "split": run.data.tags.get(SPLIT_TAG, "test"),
        "score": top.score,
        "status": top.status,
        "metrics": top.best_metrics,
        "params": {k: run.data.params.get(k) for k in sampled.split(",") if k},
        "higher_is_better": True,
    }, dict(run.data.metrics)
