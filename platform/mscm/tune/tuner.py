"""The search: Ray Tune + OptunaSearch (+ ASHA) over a YAML search space, every trial in MLflow.

Layout of one search named N (all derived from N, so ``--resume`` finds everything again):
  Ray Tune experiment   <storage_path>/N               (Tuner.restore)
  Train runs            <storage_path>/train-trial_id=<id>  (shrunk when a trial ends: tracking/ray_storage.py)
  Optuna study          study N in the RDB storage      (optuna-dashboard <url>)
  MLflow                parent run tagged mscm.search=N, one nested run per trial
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides, to_dict
from ..errors import UsageError
from ..paths import default_optuna_url
from ..raycluster import DRIVER_RESOURCE, DRIVER_SLIVER, autoscaling_capacity, init_ray, ray_logs_dir
from ..redact import redact_values
from ..tracking.contract import (
    KIND_SEARCH,
    KIND_TAG,
    SEARCH_TAG,
    search_filter,
)
from ..train.trainer import storage_path_of
from .summary import SearchRecord
from .trainable import train_driver


@dataclass
class SearchOptions:
    space: str = "smoke"
    name: str | None = None
    dataset_root: str | None = None
    tracking_uri: str | None = None
    artifact_location: str | None = None  # needed with a database tracking URI (no server)
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
    drain_timeout_s: float = 300.0  # at the end, how long to wait for the MLflow writes still queued
    # What Optuna is told of a trial: "pruned" (mscm.tune.feedback) or Ray's stock "complete" (every
    # trial COMPLETE with its last value); the second exists for bench/optuna_feedback.py.
    optuna_feedback: str = "pruned"
    verbose: bool = False  # Ray Tune's own status tables instead of one line per report
    silence_factor: float = 5.0  # a trial silent this many times the slowest epoch is named (mscm.tune.watchdog)
    fail_silent: bool = False  # ... and failed, so that the search goes on


@dataclass
class SearchOutcome:
    name: str
    experiment_path: str
    parent_run_id: str
    tracking_uri: str
    optuna_url: str
    best_trial_id: str | None
    best_metrics: dict[str, Any]
    best_checkpoint: str | None  # where it was: an ended trial's checkpoints shrink (tracking/ray_storage.py)
    num_trials: int
    num_errored: int
    baseline: dict[str, float] = field(default_factory=dict)  # the untrained model's mAP, rank1, mINP
    best_model_uri: str | None = None  # the best trial's logged model: what promotion and serving read


def _base_config(space, opts: SearchOptions) -> RunConfig:
    cfg = space.template
    overrides: dict[str, Any] = {}
    if opts.dataset_root:
        overrides["data.root"] = opts.dataset_root
    if opts.tracking_uri:
        overrides["tracking.tracking_uri"] = opts.tracking_uri
    if opts.artifact_location:
        overrides["tracking.artifact_location"] = opts.artifact_location
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


def _parent_run(tracking_uri: str, experiment: str, name: str, resume: bool, artifact_location: str | None):
    from ..tracking.mlflow_run import RunLogger, get_or_create_experiment
    from ..tracking.store_open import open_client

    client = open_client(tracking_uri)
    exp_id = get_or_create_experiment(client, experiment, tracking_uri, artifact_location)
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
        tracking_uri,
        experiment,
        run_name=name,
        run_id=run_id,
        tags={SEARCH_TAG: name, KIND_TAG: KIND_SEARCH},
        artifact_location=artifact_location,
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
    import ray.tune

    from ..errors import TrackingPending
    from ..tracking.spooled_run import drain
    from ..tracking.ui import ui_command
    from .console import quiet_tune_output
    from .interrupts import catching_stops
    from .optuna_storage import open_storage
    from .summary import close_orphans, known_trials, save_trial_table, summarise
    from .sync import sync_command
    from .trial_storage import storage_line

    plan = plan_search(opts)
    if opts.resume and not ray.tune.Tuner.can_restore(plan.experiment_path):
        raise UsageError(f"--resume: no search {plan.name!r} to continue at {plan.experiment_path}")
    resources = init_ray(opts.address, log_to_driver=opts.verbose)  # Ray Train's per-report lines: a log file
    # On a launcher cluster size concurrency from what the autoscaler can add, not what is up now.
    capacity = autoscaling_capacity() or resources
    concurrent = concurrency_for(plan.base, capacity, opts.max_concurrent or plan.space.budget.max_concurrent_trials)
    _announce(plan, concurrent)
    storage = open_storage(plan.optuna_url)  # retries a dropped database; pickles no password
    parent = _open_parent(plan, storage, concurrent)
    trainable = _trainable(plan)
    spool = _spool(plan)
    tuner = (
        ray.tune.Tuner.restore(plan.experiment_path, trainable, resume_unfinished=True, resume_errored=False)
        if opts.resume  # the callbacks pickled in the experiment state reconnect to MLflow lazily
        else _new_tuner(plan, storage, concurrent, trainable, parent.run_id, spool.folder)
    )
    status = "FAILED"
    try:
        with quiet_tune_output(not opts.verbose), catching_stops() as stops:
            results = tuner.fit()
        table = save_trial_table(results, spool.folder)
        command = sync_command(plan.name, plan.storage_path, plan.tracking_uri)
        drain(spool, plan.tracking_uri, opts.drain_timeout_s, command)
        if stops.signal is not None:
            status = "KILLED"
            _raise_interrupted(plan, parent, stops.signal)
        print(storage_line(plan.storage_path, plan.name, known_trials(table)))  # after the writer pruned
        record = spool_record(plan)
        close_orphans(record, parent, known_trials(table))
        summary = summarise(record, parent, table)
        outcome = _outcome(plan, parent, summary, results)
        _raise_if_every_trial_failed_on_input(results)
        status = "FINISHED"
        return outcome
    except TrackingPending:
        status = None  # the store is away: `mscm sync` ends the parent run after the trials' writes
        raise
    finally:
        if status:
            parent.end(status)
        print(f"MLflow UI and Optuna dashboard: {ui_command(plan.tracking_uri, plan.optuna_url)}")


def _announce(plan: SearchPlan, concurrent: int) -> None:
    from ..tracking.ui import ui_command

    print(
        f"search {plan.name}: space {plan.space.source}, {plan.trials} trials x {plan.epochs} epochs, "
        f"{concurrent} at a time"
    )
    # Printed now: a lost head node takes the driver with it, and nothing is printed at the end (docs/cluster.md).
    print(f"if it is cut off (its driver, Ray or the head node lost), resume it with: {resume_command(plan)}")
    if not plan.opts.verbose:
        print(f"Ray's own output (workers, Train controllers): {ray_logs_dir()}; --verbose prints it here")
    print(f"MLflow UI and Optuna dashboard: {ui_command(plan.tracking_uri, plan.optuna_url)}")


def _raise_interrupted(plan: SearchPlan, parent, signum: int) -> None:
    """The trials cut off end KILLED; the error names them and the exact command that resumes."""
    import signal

    from ..errors import SearchInterrupted
    from .interrupts import EXIT_CODES
    from .summary import kill_running_runs

    cut = kill_running_runs(parent)
    running = f"{len(cut)} trial(s) were running ({', '.join(n.split()[0] for n in cut)})" if cut else "none running"
    err = SearchInterrupted(
        f"search {plan.name} interrupted by {signal.Signals(signum).name}: {running}; its state is saved",
        hint=f"resume it with: {resume_command(plan)}",
    )
    err.exit_code = EXIT_CODES[signum]
    raise err


def resume_command(plan: SearchPlan) -> str:
    """The exact command that continues this search (URIs with any password redacted)."""
    import shlex

    from ..redact import redact

    parts = ["mscm", "tune", "--resume", "--name", plan.name, "--space", plan.opts.space]
    parts += ["--storage-path", plan.storage_path, "--tracking-uri", redact(plan.tracking_uri)]
    parts += ["--optuna-url", redact(plan.optuna_url)]
    if plan.opts.dataset_root:
        parts += ["--dataset-root", plan.opts.dataset_root]
    return shlex.join(parts)


def spool_record(plan: SearchPlan) -> SearchRecord:
    return SearchRecord(
        plan.name,
        plan.tracking_uri,
        plan.optuna_url,
        plan.base.tracking.experiment,
        plan.base.eval.selection_metric,
        plan.space.metric,
    )


def _spool(plan: SearchPlan):
    from ..tracking.spool import Spool, spool_dir
    from ..tracking.spooled_run import register_store

    spool = Spool(spool_dir(plan.storage_path, plan.name))
    spool_record(plan).save(spool.folder)
    register_store(spool, plan.tracking_uri)
    return spool


def _outcome(plan: SearchPlan, parent, summary: dict[str, Any], results) -> SearchOutcome:
    from ..tracking.metrics import baseline_of

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
        baseline_of(parent.client.get_run(parent.run_id).data.metrics),
        summary.get("model_uri"),
    )


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
    tracking = plan.base.tracking
    parent = _parent_run(plan.tracking_uri, tracking.experiment, plan.name, opts.resume, tracking.artifact_location)
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
        ray.tune.with_parameters(  # the trials never see a store's password: the driver does their tracking
            train_driver, base=redact_values(to_dict(plan.base)), log_level="INFO" if plan.opts.verbose else "WARNING"
        ),
        {DRIVER_RESOURCE: DRIVER_SLIVER},
    )


def _new_tuner(plan: SearchPlan, storage, concurrent: int, trainable, parent_run_id: str, spool_folder: Path):
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
        callbacks=_callbacks(plan, parent_run_id, spool_folder),
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
        time_attr="epoch",  # not Tune's report count, which a restored trial's reports can fall behind
        metric=space.metric,
        mode=space.mode,
        max_t=plan.epochs,
        grace_period=min(budget.grace_period, plan.epochs),
        reduction_factor=budget.reduction_factor,
        stop_last_trials=False,  # let trials that reach max_t end on their own (docs/stack.md P7)
    )


def _callbacks(plan: SearchPlan, parent_run_id: str, spool_folder: Path) -> list:
    from .console import ProgressLines
    from .tracking import MlflowTrialLogger
    from .watchdog import SilenceWatch

    logger = MlflowTrialLogger(
        plan.tracking_uri,
        plan.base.tracking.experiment,
        parent_run_id,
        plan.epochs,
        base=redact_values(to_dict(plan.base)),  # pickled with the experiment state
        dataset=plan.dataset,
        log_models=plan.opts.log_models,
        order=tuple(p.key for p in plan.space.parameters),
        spool_folder=str(spool_folder),
    )
    watch = SilenceWatch(plan.opts.silence_factor, plan.opts.fail_silent)
    return [logger, watch] if plan.opts.verbose else [logger, watch, ProgressLines(plan.epochs)]


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


__all__ = ["SearchOptions", "SearchOutcome", "SearchPlan", "concurrency_for", "plan_search", "run_search"]
