"""Reading a search's confirmation back from MLflow: for each re-trained configuration, its seeds' runs
and the mean, standard deviation and 95 % interval of every ``best/<metric>``.

A confirmation run is a nested run of the search tagged ``mscm.confirm_of`` (the search trial whose
configuration it re-trains) and ``mscm.seed``; ``mscm confirm`` writes them (mscm.tune.confirm).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from .contract import CONFIRM_TAG, SAMPLED_TAG, SEED_TAG, STATUS_TAG
from .metrics import BEST_PREFIX, best_key
from .trials import SearchRef, TrialChoice, _choice, confirmation_runs

SEED_KEY = "train.seed"  # the run-config key a confirmation run varies

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and a two-sided Student-t interval of ``values``."""

    values: tuple[float, ...]
    mean: float
    std: float
    low: float
    high: float

    @staticmethod
    def of(values: list[float], confidence: float = CONFIDENCE) -> Summary:
        from scipy import stats

        n = len(values)
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if n > 1 else float("nan")
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
        return Summary(tuple(values), mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class ConfirmedConfig:
    """One configuration of the search, re-trained with ``len(seeds)`` new seeds."""

    source_trial: str  # the search trial whose configuration was re-trained
    params: dict[str, str]  # its sampled values, as MLflow params
    seeds: tuple[int, ...]
    runs: tuple[TrialChoice, ...] = ()  # each seed's run, in seed order
    metrics: dict[str, Summary] = field(default_factory=dict)  # metric (no prefix) -> summary over the seeds

    def representative(self, metric: str):
        """The seed run registered for this configuration: the one whose ``best/<metric>`` is nearest the
        configuration's mean (not the luckiest seed); on a tie the lower seed."""
        mean = self.metrics[metric].mean
        best = min(range(len(self.runs)), key=lambda i: (abs(self.runs[i].best_metrics[metric] - mean), i))
        return self.runs[best]


def confirmed_configs(client, search: SearchRef, metric: str) -> list[ConfirmedConfig]:
    """The confirmed configurations, best confirmed mean of ``best/<metric>`` first. Runs that failed or
    have no ``best/<metric>`` are left out of the statistics."""
    key = best_key(metric)
    groups: dict[str, list] = {}
    for run in confirmation_runs(client, search):
        value = run.data.metrics.get(key)
        if run.data.tags.get(STATUS_TAG) == "failed" or value is None or not math.isfinite(value):
            continue
        groups.setdefault(run.data.tags[CONFIRM_TAG], []).append(run)
    out = []
    for source, runs in groups.items():
        runs.sort(key=lambda r: int(r.data.tags.get(SEED_TAG, 0)))
        choices = tuple(_choice(search, r, float(r.data.metrics[key]), key) for r in runs)
        names = sorted({k[len(BEST_PREFIX) :] for r in runs for k in r.data.metrics if k.startswith(BEST_PREFIX)})
        summaries = {
            m: Summary.of([float(r.data.metrics[BEST_PREFIX + m]) for r in runs])
            for m in names
            if all(BEST_PREFIX + m in r.data.metrics for r in runs)
        }
        keys = [k for k in runs[0].data.tags.get(SAMPLED_TAG, "").split(",") if k and k != SEED_KEY]
        sampled = {k: runs[0].data.params.get(k, "") for k in keys}
        seeds = tuple(int(r.data.tags.get(SEED_TAG, 0)) for r in runs)
        out.append(ConfirmedConfig(source, sampled, seeds, choices, summaries))
    out.sort(key=lambda c: -c.metrics[metric].mean if metric in c.metrics else math.inf)
    return out
