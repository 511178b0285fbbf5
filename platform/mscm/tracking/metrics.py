"""The metric schema of the MLflow record: which keys a run carries and when they are written.

A training run (one ``mscm train`` or one trial of a search) has:
  per epoch, step = epoch   ``eval/<m>`` (only at epochs that evaluated), ``loss/<term>``, ``lr/<group>``,
                            ``perf/images_per_s``, ``perf/epoch_time_s``, ``perf/eval_time_s``,
                            ``perf/data_wait_ms`` (per step), ``perf/data_wait_frac`` (of the epoch),
                            ``system/<node>/...`` (each worker node's CPU, memory, GPU: train/node_metrics.py)
  once, at the end          ``best/<m>`` and ``best/epoch`` of the best checkpoint, ``params_m``, ``latency_ms``
A search's parent run has the best trial's ``best/...`` figures and ``trials/<status>`` counts.

Everything else a worker reports (Tune's bookkeeping, wall-clock stamps, the selection score) stays
in Ray's results. No Ray or MLflow import here: the worker, the Tune driver and the registry share it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from ..config.schema import Metric

METRIC_KEYS: tuple[str, ...] = get_args(Metric)  # the evaluation metrics (mscm.eval.scores computes them)

EVAL_PREFIX, LOSS_PREFIX, LR_PREFIX, BEST_PREFIX = "eval/", "loss/", "lr/", "best/"
PERF_KEYS = ("perf/images_per_s", "perf/epoch_time_s", "perf/eval_time_s", "perf/data_wait_ms", "perf/data_wait_frac")
SYSTEM_PREFIX = "system/"  # per node: system/<node>/cpu_percent, ... (mscm.train.node_metrics)
COST_KEYS = ("params_m", "latency_ms")  # the inference cost, measured once per run
BEST_EPOCH = "best/epoch"
EVAL_EPOCH = "eval/epoch"  # report key: the epoch the latest evaluation in a report comes from
TRIAL_COUNT_PREFIX = "trials/"
BASELINE_PREFIX = "baseline/"  # the untrained model's scores, on the parent run (mscm.train.baseline)
TRIAL_STATUSES = ("completed", "stopped_early", "failed", "interrupted")
MAX_RUN_KEYS = 40  # the budget of metric keys per run that keeps MLflow's chart view readable


def best_key(metric: str) -> str:
    """The summary key of an evaluation metric: ``best/mAP``."""
    return f"{BEST_PREFIX}{metric}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def epoch_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The per-epoch series of one worker report. ``eval/`` only when the report's evaluation is
    fresh: later reports carry it again for Tune's schedulers, which would log it twice here."""
    out: dict[str, float] = {}
    for key, value in report.items():
        if key.startswith((LOSS_PREFIX, LR_PREFIX, SYSTEM_PREFIX)) or key in PERF_KEYS:
            number = _number(value)
            if number is not None:
                out[key] = number
    if report.get(EVAL_EPOCH) is not None and report.get(EVAL_EPOCH) == report.get("epoch"):
        for metric in METRIC_KEYS:
            number = _number(report.get(metric))
            if number is not None:
                out[f"{EVAL_PREFIX}{metric}"] = number
    return out


def run_summary(best_checkpoint_metrics: Mapping[str, Any]) -> dict[str, float]:
    """The run's end summary from its best checkpoint's metrics (the report saved with it)."""
    out: dict[str, float] = {}
    for metric in METRIC_KEYS:
        number = _number(best_checkpoint_metrics.get(metric))
        if number is not None:
            out[best_key(metric)] = number
    epoch = _number(best_checkpoint_metrics.get("epoch"))
    if epoch is not None:
        out[BEST_EPOCH] = epoch
    for key in COST_KEYS:
        number = _number(best_checkpoint_metrics.get(key))
        if number is not None:
            out[key] = number
    return out


def best_figures(run_metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's ``best/...`` summary as a dict without the prefix: ``{"mAP": .., "epoch": ..}``."""
    return {k[len(BEST_PREFIX) :]: v for k, v in run_metrics.items() if k.startswith(BEST_PREFIX)}


def baseline_summary(scores: Mapping[str, float]) -> dict[str, float]:
    """The parent run's ``baseline/<metric>`` figures from the untrained model's scores."""
    return {f"{BASELINE_PREFIX}{k}": float(v) for k, v in scores.items()}


def baseline_of(run_metrics: Mapping[str, float]) -> dict[str, float]:
    return {k[len(BASELINE_PREFIX) :]: v for k, v in run_metrics.items() if k.startswith(BASELINE_PREFIX)}


def search_summary(best_trial_metrics: Mapping[str, float], statuses: Iterable[str]) -> dict[str, float]:
    """The parent run's metrics: the best trial's summary and how many trials ended in each status."""
    statuses = list(statuses)
    out = {k: v for k, v in best_trial_metrics.items() if k.startswith(BEST_PREFIX) or k in COST_KEYS}
    out[f"{TRIAL_COUNT_PREFIX}total"] = float(len(statuses))
    for status in TRIAL_STATUSES:
        out[f"{TRIAL_COUNT_PREFIX}{status}"] = float(sum(s == status for s in statuses))
    return out
