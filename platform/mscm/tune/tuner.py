"""The search: Ray Tune + OptunaSearch (+ ASHA) over a YAML search space, every trial in MLflow.

Layout of one search named N (all derived from N, so ``--resume`` finds everything again):
  Ray Tune experiment   <storage_path>/N               (Tuner.restore)
  Train runs            <storage_path>/train-trial_id=<id>
  Optuna study          study N in the RDB storage      (optuna-dashboard <url>)
  MLflow                parent run tagged mscm.search=N, one nested run per trial
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides, to_dict
from ..errors import UsageError
from ..paths import default_optuna_url
from ..raycluster import DRIVER_RESOURCE, DRIVER_SLIVER, autoscaling_capacity, init_ray
from ..tracking.contract import (
    KIND_SEARCH,
    KIND_TAG,
    SAMPLED_TAG,
    SEARCH_TAG,
    SPLIT_TAG,
    STATUS_TAG,
    TRIAL_TAG,
    search_filter,
)
from ..train.trainer import storage_path_of
from .trainable import train_driver


@dataclass
class SearchOptions:
    space: str = "smoke"
    name: str | None = None
    dataset_root: str | None = None
    tracking_uri: str | None = None
    storage_path: str | None = None
    optuna_url: str | None = None
    trials: int | None = None
    epochs: int | None = None
    workers_per_trial: int | None = None
    gpus_per_worker: float | None = None
    max_concurrent: int | None = None
    time_budget_s: float | None = None
    resume: bool = False
    warm_start: str | None = None  # name of an earlier study in the same Optuna storage
    address: str | None = None
    log_models: bool = True  # each trial's inference model in MLflow (what promotion reads)
    baseline: bool = True  # evaluate the untrained model on the driver first (baseline/* on the parent run)
    # What Optuna is told of a trial: "pruned" (mscm.tune.feedback) or Ray's stock "complete" (every
    # trial COMPLETE with its last value); the second exists for bench/optuna_feedback.py.
    optuna_feedback: str = "pruned"
    verbose: bool = False  # Ray Tune's own status tables instead of one line per report


@dataclass
class SearchOutcome:
    name: str
    experiment_path: str
    parent_run_id: str
    tracking_uri: str
    optuna_url: str
    best_trial_id: str | None
    best_metrics: dict[str, Any]
    best_checkpoint: str | None
    num_trials: int
    num_errored: int
    baseline: dict[str, float] = field(default_factory=dict)  # the untrained model's mAP, rank1, mINP


def _base_config(space, opts: SearchOptions) -> RunConfig:
    cfg = space.template
    overrides: dict[str, Any] = {}
    if opts.dataset_root:
        overrides["data.root"] = opts.dataset_root
    if opts.tracking_uri:
        overrides["tracking.tracking_uri"] = opts.tracking_uri
    if opts.storage_path:
        overrides["train.storage_path"] = opts.storage_path
    if opts.epochs:
        overrides["schedule.epochs"] = opts.epochs
    if opts.workers_per_trial:
        overrides["train.num_workers"] = opts.workers_per_trial
    if opts.gpus_per_worker is not None:
        overrides["train.use_gpu"] = opts.gpus_per_worker > 0
        if opts.gpus_per_worker > 0:
            overrides["train.gpus_per_worker"] = opts.gpus_per_worker
    if overrides:
        cfg = apply_overrides(cfg, overrides, source="command-line options")
    return cfg


def concurrency_for(cfg: RunConfig, resources: dict[str, float], requested: int | None) -> int:
    """How many trials fit at once: Train runs start only when all their workers fit (docs/stack.md 2.2)."""
    per_trial_cpu = cfg.train.num_workers * cfg.train.cpus_per_worker
    fit = int(resources.get("CPU", 0) // per_trial_cpu) if per_trial_cpu else 1
    if cfg.train.use_gpu:
        fit = min(fit, int(resources.get("GPU", 0) // (cfg.train.num_workers * cfg.train.gpus_per_worker)))
    fit = min(fit, int(resources.get(DRIVER_RESOURCE, 1) // DRIVER_SLIVER))
    if fit < 1:
        need = f"{per_trial_cpu:g} CPU" + (
            f" + {cfg.train.num_workers * cfg.train.gpus_per_worker:g} GPU" if cfg.train.use_gpu else ""
        )
        raise UsageError(
            f"one trial needs {need} and a {DRIVER_RESOURCE} sliver; the cluster has {resources}",
            hint="--workers-per-trial and --gpus-per-worker size a trial",
        )
    return max(1, min(fit, requested or fit))


def _parent_run(tracking_uri: str, experiment: str, name: str, resume: bool):
    from mlflow import MlflowClient

    from ..tracking.mlflow_run import RunLogger, get_or_create_experiment

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp_id = get_or_create_experiment(client, experiment, tracking_uri)
    found = client.search_runs([exp_id], filter_string=search_filter(name), max_results=1)
    if found and not resume:
        raise UsageError(
            f"a search named {name!r} already exists in {tracking_uri}",
            hint="--resume continues it; --name NEW starts another",
        )
    run_id = found[0].info.run_id if found else None
    if run_id:
        client.update_run(run_id, status="RUNNING")
    return RunLogger(
        tracking_uri, experiment, run_name=name, run_id=run_id, tags={SEARCH_TAG: name, KIND_TAG: KIND_SEARCH}
    )


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search needs, worked out and checked before Ray starts."""

    opts: SearchOptions
    space: Any  # mscm.tune.space.SearchSpace
    base: RunConfig  # the trials' base config, with the resolved stores
    name: str
    trials: int
    tracking_uri: str
    optuna_url: str
    storage_path: str
    dataset: Any  # mscm.tracking.datasets.DatasetInput of the data the trials select on

    @property
    def epochs(self) -> int:
        return self.base.schedule.epochs

    @property
    def experiment_path(self) -> str:
        return os.path.join(self.storage_path, self.name)


def plan_search(opts: SearchOptions) -> SearchPlan:
    """Load and validate the space, resolve names and stores, and preflight the dataset and stores."""
    from ..preflight import preflight_run
    from ..tracking.datasets import describe_dataset
    from ..tracking.mlflow_run import resolve_tracking_uri
    from .space_loader import load_search_space

    space = load_search_space(opts.space)
    base = _base_config(space, opts)
    name = opts.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    tracking_uri = resolve_tracking_uri(base.tracking.tracking_uri)
    optuna_url = opts.optuna_url or default_optuna_url()
    storage_path = storage_path_of(base)
    base = apply_overrides(
        base,
        {"tracking.tracking_uri": tracking_uri, "train.storage_path": storage_path},
        source="resolved search defaults",
    )
    if opts.resume and not os.path.isdir(os.path.join(storage_path, name)):
        raise UsageError(f"--resume: no search {name!r} to continue at {os.path.join(storage_path, name)}")
    report = preflight_run(base, storage_path=storage_path, tracking_uri=tracking_uri, optuna_url=optuna_url)
    dataset = describe_dataset(report.dataset.dataset, base.data.val_identities)
    trials = opts.trials or space.budget.trials
    return SearchPlan(opts, space, base, name, trials, tracking_uri, optuna_url, storage_path, dataset)


def run_search(opts: SearchOptions) -> SearchOutcome:
    """Plan, build (a fresh search's searcher and scheduler; a resumed one only restores), run, summarise."""
    import optuna
    import ray.tune

    from ..tracking.ui import ui_command
    from .console import quiet_tune_output

    plan = plan_search(opts)
    if opts.resume and not ray.tune.Tuner.can_restore(plan.experiment_path):
        raise UsageError(f"--resume: no search {plan.name!r} to continue at {plan.experiment_path}")
    resources = init_ray(opts.address)
    # On a launcher cluster size concurrency from what the autoscaler can add, not what is up now.
    capacity = autoscaling_capacity() or resources
    concurrent = concurrency_for(plan.base, capacity, opts.max_concurrent or plan.space.budget.max_concurrent_trials)
    print(
        f"search {plan.name}: space {plan.space.source}, {plan.trials} trials x {plan.epochs} epochs, "
        f"{concurrent} at a time"
    )
    print(f"MLflow UI and Optuna dashboard: {ui_command(plan.tracking_uri, plan.optuna_url)}")
    storage = optuna.storages.RDBStorage(plan.optuna_url)
    parent = _open_parent(plan, storage, concurrent)
    trainable = _trainable(plan)
    tuner = (
        ray.tune.Tuner.restore(plan.experiment_path, trainable, resume_unfinished=True, resume_errored=False)
        if opts.resume  # the callbacks pickled in the experiment state reconnect to MLflow lazily
        else _new_tuner(plan, storage, concurrent, trainable, parent.run_id)
    )
    status = "FAILED"
    try:
        with quiet_tune_output(not opts.verbose):
            results = tuner.fit()
        _close_orphans(plan.tracking_uri, parent, results, storage, plan.name)
        outcome = _summarise(results, plan, parent)
        _raise_if_every_trial_failed_on_input(results)
        status = "FINISHED"
        return outcome
    finally:
        parent.end(status)
        print(f"MLflow UI and Optuna dashboard: {ui_command(plan.tracking_uri, plan.optuna_url)}")


def _open_parent(plan: SearchPlan, storage, concurrent: int):
    """The search's parent run: created (with its config, dataset and space) or, on resume, reopened.
    A warm start copies the earlier study's trials first, before any MLflow write."""
    from .warmstart import warm_start_study

    opts = plan.opts
    extra = {
        "search.space": plan.space.source,
        "search.study": plan.name,
        "search.trials": plan.trials,
        "search.concurrent": concurrent,
    }
    if opts.warm_start and not opts.resume:  # a resumed search's study already holds the copies
        warm = warm_start_study(storage, opts.warm_start, plan.name, plan.space)
        print(warm.describe())
        extra.update({"search.warm_start": opts.warm_start, "search.warm_start_trials": warm.copied})
    parent = _parent_run(plan.tracking_uri, plan.base.tracking.experiment, plan.name, opts.resume)
    if not opts.resume:
        parent.log_config(plan.base, extra_params=extra)
        parent.log_dataset(plan.dataset)
        parent.log_artifact(plan.space.source, "search_space")
        if opts.baseline:
            from ..tracking.metrics import baseline_summary
            from ..train.baseline import untrained_scores

            scores = untrained_scores(plan.base)
            parent.log_metrics(baseline_summary(scores), step=0)
            shown = ", ".join(f"{k} {100 * v:.1f}%" for k, v in scores.items())
            print(f"untrained baseline: {shown} ({plan.dataset.split} split)")
    return parent


def _trainable(plan: SearchPlan):
    import ray.tune

    return ray.tune.with_resources(
        ray.tune.with_parameters(
            train_driver, base=to_dict(plan.base), log_level="INFO" if plan.opts.verbose else "WARNING"
        ),
        {DRIVER_RESOURCE: DRIVER_SLIVER},
    )


def _new_tuner(plan: SearchPlan, storage, concurrent: int, trainable, parent_run_id: str):
    """A fresh search: OptunaSearch over the space, ASHA (or FIFO), and the trial callbacks."""
    import ray.tune
    from ray.tune.search.optuna import OptunaSearch

    from .feedback import FeedbackOptunaSearch

    space = plan.space
    common = dict(
        metric=space.metric,  # lists for a multi-objective search
        mode=space.mode,
        sampler=space.make_sampler(),
        storage=storage,
        study_name=plan.name,
    )
    if plan.opts.optuna_feedback == "complete":
        searcher = OptunaSearch(space.define_by_run, **common)
    else:
        searcher = FeedbackOptunaSearch(space.define_by_run, budget=plan.epochs, **common)
    run_config = ray.tune.RunConfig(
        name=plan.name,
        storage_path=plan.storage_path,
        callbacks=_callbacks(plan, parent_run_id),
        # A trial that fails (non-finite loss, an error in its config) is not retried: worker losses are
        # already retried inside the trial by Ray Train from its latest checkpoint.
        failure_config=ray.tune.FailureConfig(max_failures=0, fail_fast=False),
        verbose=1 if plan.opts.verbose else 0,
    )
    tune_config = ray.tune.TuneConfig(
        search_alg=searcher,
        scheduler=_scheduler(plan),
        num_samples=plan.trials,
        max_concurrent_trials=concurrent,
        time_budget_s=plan.opts.time_budget_s or space.budget.time_budget_s,
    )
    return ray.tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def _scheduler(plan: SearchPlan):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    space, budget = plan.space, plan.space.budget
    if budget.scheduler != "asha" or space.multi_objective:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=space.metric,
        mode=space.mode,
        max_t=plan.epochs,
        grace_period=min(budget.grace_period, plan.epochs),
        reduction_factor=budget.reduction_factor,
        stop_last_trials=False,  # let trials that reach max_t end on their own (docs/stack.md P7)
    )


def _callbacks(plan: SearchPlan, parent_run_id: str) -> list:
    from .console import ProgressLines
    from .tracking import MlflowTrialLogger

    logger = MlflowTrialLogger(
        plan.tracking_uri,
        plan.base.tracking.experiment,
        parent_run_id,
        plan.epochs,
        base=to_dict(plan.base),
        dataset=plan.dataset,
        log_models=plan.opts.log_models,
        order=tuple(p.key for p in plan.space.parameters),
    )
    return [logger] if plan.opts.verbose else [logger, ProgressLines(plan.epochs)]


def _raise_if_every_trial_failed_on_input(results) -> None:
    """A search whose every trial failed, one of them on an MscmError (bad input that the preflight
    could not see, such as an image that does not decode), fails with that error."""
    from ..errors import find_mscm_error

    errors = [r.error for r in results]
    if not errors or any(e is None for e in errors):
        return
    found = next((err for err in map(find_mscm_error, errors) if err is not None), None)
    if found is not None:
        raise found


def _close_orphans(tracking_uri: str, parent, results, storage, study_name: str) -> None:
    """After a resumed search: trials that were running when the driver died but had not reached Tune's
    experiment state are unknown to the restored search (it samples replacements). Close their MLflow
    runs as KILLED (status "interrupted") and their Optuna trials as FAIL, so neither stays RUNNING."""
    import optuna
    from mlflow import MlflowClient

    known = {r.metrics.get("trial_id") for r in results if r.metrics}
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    runs = client.search_runs(
        [parent.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'", max_results=10000
    )
    for run in runs:
        if run.info.status == "RUNNING" and run.data.tags.get(TRIAL_TAG) not in known:
            client.set_tag(run.info.run_id, STATUS_TAG, "interrupted")
            client.set_terminated(run.info.run_id, status="KILLED")
    study = optuna.load_study(study_name=study_name, storage=storage)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _summarise(results, plan: SearchPlan, parent) -> SearchOutcome:
    """Trial table, Optuna plots and the best trial's summary (:mod:`mscm.tracking.trials`), on the parent run."""
    from ..tracking.metrics import baseline_of, search_summary
    from ..tracking.trials import SearchRef, trial_statuses

    client = parent.client  # the RunLogger's, on the same store
    search = SearchRef(plan.name, parent.run_id, parent.experiment_id)
    summary, best_metrics = _best_summary(client, search, plan.base.eval.selection_metric)
    metric = plan.space.metric
    pareto = _log_search_files(parent, results, summary, plan.optuna_url, plan.name, metric)
    parent.log_metrics(search_summary(best_metrics, trial_statuses(client, search)), step=0)
    tags = {} if isinstance(metric, str) else {"pareto_trials": len(pareto)}
    if summary.get("trial_id"):
        tags.update({"best_trial_id": summary["trial_id"], "best_run_id": summary["run_id"]})
    parent.set_tags(tags)
    return SearchOutcome(
        plan.name,
        plan.experiment_path,
        parent.run_id,
        plan.tracking_uri,
        plan.optuna_url,
        summary.get("trial_id"),
        summary.get("metrics", {}),
        summary.get("checkpoint"),
        len(results),
        len(results.errors),
        baseline_of(client.get_run(parent.run_id).data.metrics),
    )


def _trial_table(results):
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


def _log_search_files(parent, results, summary, optuna_url, name, metric) -> list:
    """trials.csv, best_trial.json, the study's plots and (multi-objective) its Pareto front; returns the front."""
    from .report import pareto_front, search_plots

    single = isinstance(metric, str)
    names = [metric] if single else list(metric)
    pareto = [] if single else pareto_front(optuna_url, name, names)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp, "trials.csv")
        _trial_table(results).to_csv(table, index=False)
        parent.log_artifact(table, "search")
        Path(tmp, "best_trial.json").write_text(json.dumps(summary, indent=2, default=str))
        parent.log_artifact(Path(tmp, "best_trial.json"), "search")
        for png in search_plots(optuna_url, name, Path(tmp), objective_names=names):
            parent.log_artifact(png, "search/plots")
        if pareto:
            import pandas as pd

            pd.DataFrame(pareto).to_csv(Path(tmp, "pareto_front.csv"), index=False)
            parent.log_artifact(Path(tmp, "pareto_front.csv"), "search")
    return pareto


def _best_summary(client, search, selection_metric: str) -> tuple[dict[str, Any], dict[str, float]]:
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


__all__ = ["SearchOptions", "SearchOutcome", "SearchPlan", "concurrency_for", "plan_search", "run_search"]
