"""``mscm confirm``: re-train the K best configurations of a search with N new training seeds each.

One seed per configuration picks the luckiest seed, and the gaps between a search's best trials are
often inside seed noise. Confirmation runs each configuration again, as a fixed configuration (a Ray
Tune run of K x N trials through the same trainable, with the search's resources and budget and no
early stopping), logs every run nested under the search's parent run (tags ``mscm.confirm_of`` and
``mscm.seed``), and writes per configuration the mean ± standard deviation and a 95 % interval of
every ``best/`` metric: ``confirm/confirm.csv``, ``confirm/confirm.png`` and ``confirm/<rank>/<metric>_*``
metrics on the parent run. Promotion then reads the confirmed means (mscm.registry.promote).
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, flatten, from_dict, to_dict
from ..errors import UsageError
from ..raycluster import DRIVER_RESOURCE, DRIVER_SLIVER, init_ray
from ..tracking.confirmation import SEED_KEY, ConfirmedConfig, confirmed_configs
from ..tracking.contract import CONFIRM_TAG, SEED_TAG
from .tracking import MlflowTrialLogger, config_key
from .trainable import train_driver


@dataclass
class ConfirmOptions:
    search: str
    top: int = 3
    seeds: int = 3
    tracking_uri: str | None = None
    experiment: str | None = None
    address: str | None = None
    log_models: bool = True
    verbose: bool = False
    drain_timeout_s: float = 300.0  # at the end, how long to wait for the MLflow writes still queued


@dataclass(frozen=True)
class ConfirmPlan:
    """The configurations to re-train: the search's base config, each chosen trial's sampled values and
    the seeds (the same new seeds for every configuration, so the comparison is paired)."""

    base: RunConfig
    search: Any  # mscm.tracking.trials.SearchRef
    sources: tuple[tuple[str, dict[str, Any]], ...]  # (trial id, sampled overrides), best first
    seeds: tuple[int, ...]
    metric: str
    tracking_uri: str

    def points(self) -> list[dict[str, Any]]:
        return [{**sampled, SEED_KEY: seed} for _, sampled in self.sources for seed in self.seeds]

    def tags(self) -> dict[str, dict[str, str]]:
        return {
            config_key({**sampled, SEED_KEY: seed}): {CONFIRM_TAG: trial, SEED_TAG: str(seed)}
            for trial, sampled in self.sources
            for seed in self.seeds
        }


def plan_confirmation(opts: ConfirmOptions) -> ConfirmPlan:
    """The K best trials of the search (by the one ranking rule) and their configurations, from MLflow."""
    from ..tracking.mlflow_run import resolve_tracking_uri
    from ..tracking.trials import find_search, ranked_trials

    if opts.top < 1 or opts.seeds < 2:
        raise UsageError(
            f"--top must be >= 1 and --seeds >= 2 (a spread needs two seeds), got {opts.top}, {opts.seeds}"
        )
    tracking_uri = resolve_tracking_uri(opts.tracking_uri)
    client = _client(tracking_uri)
    search = find_search(client, opts.search, opts.experiment)
    base = _run_config(client, search.run_id)
    ranked, _ = ranked_trials(client, search, base.eval.selection_metric)
    if not ranked:
        raise UsageError(f"search {opts.search!r} has no finished trial to confirm")
    sources = []
    for choice in ranked[: opts.top]:
        trial_cfg = flatten(to_dict(_run_config(client, choice.run_id)))
        keys = [k for k in client.get_run(choice.run_id).data.tags.get("mscm.sampled", "").split(",") if k]
        sources.append((choice.trial_id, {k: trial_cfg[k] for k in keys}))
    seeds = tuple(base.train.seed + 1 + j for j in range(opts.seeds))  # new: never the search's own seed
    return ConfirmPlan(base, search, tuple(sources), seeds, base.eval.selection_metric, tracking_uri)


def _client(tracking_uri: str):
    """A client of an existing store: confirming a search reads one, and never creates an empty store."""
    from ..preflight.stores import check_tracking_uri
    from ..tracking.store_open import open_client

    check_tracking_uri(tracking_uri, must_exist=True)
    return open_client(tracking_uri)


def _run_config(client, run_id: str) -> RunConfig:
    import yaml

    with tempfile.TemporaryDirectory(prefix="mscm-confirm-") as tmp:  # read, then gone
        data = yaml.safe_load(Path(client.download_artifacts(run_id, "config/run.yaml", tmp)).read_text())
    return from_dict(RunConfig, data, source=f"run {run_id} config/run.yaml")


@dataclass
class ConfirmOutcome:
    search: str
    configs: list[ConfirmedConfig]
    metric: str
    num_runs: int
    num_errored: int


def confirm_search(opts: ConfirmOptions) -> ConfirmOutcome:
    """Re-train, then summarise on the search's parent run."""
    import ray.tune

    from ..tracking.spooled_run import drain
    from .console import quiet_tune_output
    from .sync import sync_command
    from .tuner import concurrency_for

    plan = plan_confirmation(opts)
    resources = init_ray(opts.address)
    concurrent = concurrency_for(plan.base, resources, None)
    points = plan.points()
    print(
        f"confirm {plan.search.name}: {len(plan.sources)} configurations x {len(plan.seeds)} seeds "
        f"{list(plan.seeds)} = {len(points)} runs, {concurrent} at a time"
    )
    spool = _spool(plan)
    tuner = ray.tune.Tuner(
        _trainable(plan, opts.verbose),
        param_space=_param_space(points),
        tune_config=ray.tune.TuneConfig(
            search_alg=_fixed_points(points, concurrent), num_samples=len(points), max_concurrent_trials=concurrent
        ),
        run_config=ray.tune.RunConfig(
            name=f"{plan.search.name}-confirm",
            storage_path=plan.base.train.storage_path,
            callbacks=[_logger(plan, opts, spool.folder)],
            failure_config=ray.tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=1 if opts.verbose else 0,
        ),
    )
    with quiet_tune_output(not opts.verbose):
        results = tuner.fit()
    command = sync_command(f"{plan.search.name}-confirm", plan.base.train.storage_path, plan.tracking_uri)
    drain(spool, plan.tracking_uri, opts.drain_timeout_s, command)
    configs = _summarise(plan)
    return ConfirmOutcome(plan.search.name, configs, plan.metric, len(results), len(results.errors))


def _param_space(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Every key of the points with the values they take: Tune only runs preset points whose keys are in
    the space, and a Categorical holding the value takes it without a warning."""
    import ray.tune

    space = {}
    for key in points[0]:
        values: list[Any] = []
        for p in points:
            if p[key] not in values:
                values.append(p[key])
        space[key] = ray.tune.choice(values)
    return space


def _fixed_points(points: list[dict[str, Any]], concurrent: int):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(points_to_evaluate=points, max_concurrent=concurrent)


def _trainable(plan: ConfirmPlan, verbose: bool):
    import ray.tune

    return ray.tune.with_resources(
        ray.tune.with_parameters(train_driver, base=to_dict(plan.base), log_level="INFO" if verbose else "WARNING"),
        {DRIVER_RESOURCE: DRIVER_SLIVER},
    )


def _logger(plan: ConfirmPlan, opts: ConfirmOptions, spool_folder: Path) -> MlflowTrialLogger:
    order = tuple(plan.sources[0][1]) + (SEED_KEY,)
    return MlflowTrialLogger(
        plan.tracking_uri,
        plan.base.tracking.experiment,
        plan.search.run_id,
        plan.base.schedule.epochs,
        base=to_dict(plan.base),
        log_models=opts.log_models,
        order=order,
        tags_for=plan.tags(),
        spool_folder=str(spool_folder),
    )


def _spool(plan: ConfirmPlan):
    from ..tracking.spool import Spool, spool_dir
    from ..tracking.spooled_run import register_store

    spool = Spool(spool_dir(plan.base.train.storage_path, f"{plan.search.name}-confirm"))
    register_store(spool, plan.tracking_uri)
    return spool


def _summarise(plan: ConfirmPlan) -> list[ConfirmedConfig]:
    """confirm.csv, the per-configuration metrics and the interval plot, on the search's parent run."""
    from ..tracking.mlflow_run import RunLogger

    client = _client(plan.tracking_uri)
    configs = confirmed_configs(client, plan.search, plan.metric)
    parent = RunLogger(
        plan.tracking_uri, plan.base.tracking.experiment, run_name=plan.search.name, run_id=plan.search.run_id
    )
    metrics = {}
    for rank, c in enumerate(configs, 1):
        for name, s in c.metrics.items():
            metrics.update({f"confirm/{rank}/{name}_{k}": getattr(s, k) for k in ("mean", "std", "low", "high")})
    parent.log_metrics(metrics, step=0)
    parent.set_tags({"mscm.confirmed_trials": ",".join(c.source_trial for c in configs)})
    with tempfile.TemporaryDirectory() as tmp:
        parent.log_artifact(write_confirm_csv(configs, Path(tmp, "confirm.csv")), "confirm")
        if configs:
            parent.log_artifact(plot_confirmation(configs, plan.metric, Path(tmp, "confirm.png")), "confirm")
    return configs


def write_confirm_csv(configs: list[ConfirmedConfig], path: Path) -> Path:
    names = sorted({m for c in configs for m in c.metrics})
    params = sorted({k for c in configs for k in c.params})
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "source_trial", *params, "seeds", *(f"{m}_{k}" for m in names for k in _STATS)])
        for rank, c in enumerate(configs, 1):
            stats = [getattr(c.metrics[m], k) if m in c.metrics else "" for m in names for k in _STATS]
            w.writerow(
                [rank, c.source_trial, *(c.params.get(k, "") for k in params), " ".join(map(str, c.seeds)), *stats]
            )
    return path


_STATS = ("mean", "std", "low", "high")


def plot_confirmation(configs: list[ConfirmedConfig], metric: str, path: Path) -> Path:
    """Each configuration's seeds (dots) and mean with its 95 % interval (bar), best first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(configs), 3.2))
    for i, c in enumerate(configs):
        s = c.metrics[metric]
        ax.errorbar(i, 100 * s.mean, yerr=[[100 * (s.mean - s.low)], [100 * (s.high - s.mean)]], fmt="o", capsize=6)
        ax.scatter([i] * len(s.values), [100 * v for v in s.values], s=12, color="0.4", zorder=3)
    ax.set_xticks(range(len(configs)), [c.source_trial[-8:] for c in configs], rotation=20)
    ax.set_ylabel(f"best/{metric} (%)")
    ax.set_title(f"confirmed {metric}: mean and 95% interval over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
