"""The promotion gate (mscm.registry.gate): Welch's one-sided test on confirmed seeds, plus the margin."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from mscm.registry.gate import Confirmed, welch_gate


def _c(*values, metric="mAP", split="val"):
    return Confirmed(metric, split, tuple(values))


def test_the_test_is_welchs_one_sided_t_test():
    cand, champ = _c(0.41, 0.43, 0.42, 0.45), _c(0.38, 0.40, 0.39)
    d = welch_gate(cand, champ, margin=0.0, level=0.05)
    ref = stats.ttest_ind(cand.values, champ.values, equal_var=False, alternative="greater")
    assert d.t == pytest.approx(ref.statistic) and d.p == pytest.approx(ref.pvalue) and d.df == pytest.approx(ref.df)
    assert d.promote and d.candidate_n == 4 and d.champion_n == 3
    assert d.difference == pytest.approx(cand.mean - champ.mean)


def test_a_gap_inside_the_seed_noise_is_not_promoted():
    # +2 points on average, but the seeds spread by +-8 points (the ablation table's noise)
    d = welch_gate(_c(0.50, 0.34, 0.44), _c(0.40, 0.46, 0.36), margin=0.0, level=0.05)
    assert d.difference > 0 and d.p > 0.05 and not d.promote


def test_the_margin_must_be_beaten_too():
    cand, champ = _c(0.421, 0.422, 0.423), _c(0.411, 0.412, 0.413)  # +1 point, tiny spread: significant
    assert welch_gate(cand, champ, margin=0.005, level=0.05).promote
    d = welch_gate(cand, champ, margin=0.02, level=0.05)
    assert d.p < 0.05 and not d.promote  # significant, but below the practical margin


def test_no_spread_at_all_is_an_exact_comparison():
    assert welch_gate(_c(0.5, 0.5), _c(0.4, 0.4), 0.0, 0.05).promote
    d = welch_gate(_c(0.4, 0.4), _c(0.5, 0.5), 0.0, 0.05)
    assert not d.promote and d.p == 1.0 and math.isinf(d.t)


def test_confirmed_figures_round_trip_through_version_tags_and_must_match_to_compare():
    c = _c(0.412345678, 0.4, 0.43)
    back = Confirmed.from_tags(c.tags())
    assert back == c and back.mean == pytest.approx(c.mean)
    assert Confirmed.from_tags({}) is None
    assert c.comparable(_c(0.3, 0.31))
    assert not c.comparable(_c(0.3, 0.31, split="test"))  # another split
    assert not c.comparable(_c(0.3, 0.31, metric="rank1"))
    assert not c.comparable(_c(0.3))  # one value has no spread
    assert not c.comparable(None)
