"""The promotion gate: when is a candidate better than the champion, beyond noise?

With confirmation (``mscm confirm``) both models carry several seeds' values of the deciding metric.
The candidate then becomes champion only if

1. its mean beats the champion's by more than ``margin`` (the practical difference), and
2. a one-sided Welch t-test of "candidate mean > champion mean" rejects at ``level`` (the difference
   is larger than the seeds' noise).

Welch's test, not interval separation: it allows unequal spreads, and with three seeds two 95 %
intervals can overlap while the means still differ at 5 % (separation is a far stricter, unstated
level). Without confirmation of both, the single-evaluation gate (test protocol, one number each)
decides, and the decision says it is unconfirmed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

TAG_CONFIRMED = "mscm.confirmed_values"  # on a model version: the seeds' values of the deciding metric
TAG_CONFIRMED_METRIC = "mscm.confirmed_metric"  # "<metric>@<split>", e.g. "mAP@val"


@dataclass(frozen=True)
class Confirmed:
    """A model's confirmed figures: the deciding metric over its configuration's seeds, on one split."""

    metric: str
    split: str
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else float("nan")

    def tags(self) -> dict[str, str]:
        return {
            TAG_CONFIRMED: ",".join(repr(v) for v in self.values),
            TAG_CONFIRMED_METRIC: f"{self.metric}@{self.split}",
        }

    @staticmethod
    def from_tags(tags: dict[str, str]) -> Confirmed | None:
        if TAG_CONFIRMED not in tags or TAG_CONFIRMED_METRIC not in tags:
            return None
        metric, _, split = tags[TAG_CONFIRMED_METRIC].partition("@")
        return Confirmed(metric, split, tuple(float(v) for v in tags[TAG_CONFIRMED].split(",") if v))

    def comparable(self, other: Confirmed | None) -> bool:
        return (
            other is not None
            and (self.metric, self.split) == (other.metric, other.split)
            and min(len(self.values), len(other.values)) >= 2
        )


@dataclass(frozen=True)
class WelchDecision:
    promote: bool
    candidate_mean: float
    candidate_std: float
    candidate_n: int
    champion_mean: float
    champion_std: float
    champion_n: int
    difference: float
    margin: float
    t: float
    df: float
    p: float
    level: float
    rule: str = "welch"

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, metric: str) -> str:
        return (
            f"confirmed {metric} {100 * self.candidate_mean:.2f} ± {100 * self.candidate_std:.2f} "
            f"(n={self.candidate_n}) vs {100 * self.champion_mean:.2f} ± {100 * self.champion_std:.2f} "
            f"(n={self.champion_n}): "
            f"{100 * self.difference:+.2f} points, margin {100 * self.margin:.2f}; one-sided Welch t = {self.t:.2f}, "
            f"df = {self.df:.1f}, p = {self.p:.3g} (level {self.level:g})"
        )


def welch_gate(candidate: Confirmed, champion: Confirmed, margin: float, level: float) -> WelchDecision:
    """Promote when mean(candidate) - mean(champion) > margin and Welch's one-sided p < level."""
    c, h = candidate.values, champion.values
    mc, mh = statistics.fmean(c), statistics.fmean(h)
    vc, vh = statistics.variance(c) / len(c), statistics.variance(h) / len(h)
    if vc + vh == 0:  # no spread at all: the difference is exact
        t, df, p = (math.inf if mc > mh else -math.inf), float(len(c) + len(h) - 2), 0.0 if mc > mh else 1.0
    else:
        from scipy import stats

        t = (mc - mh) / math.sqrt(vc + vh)
        df = (vc + vh) ** 2 / (vc**2 / (len(c) - 1) + vh**2 / (len(h) - 1))  # Welch-Satterthwaite
        p = float(stats.t.sf(t, df))
    diff = mc - mh
    return WelchDecision(
        diff > margin and p < level,
        mc,
        candidate.std,
        len(c),
        mh,
        champion.std,
        len(h),
        diff,
        margin,
        float(t),
        float(df),
        p,
        level,
    )
