"""EvalResult: mean/std over trials, JSON round trip, paper-style table, CMC plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mscm.eval.result import EvalResult, TrialResult, format_table


def _result(values: list[tuple[float, float]], protocol="sysu-all") -> EvalResult:
    """Trials with the given (rank1, mAP); other metrics derived so every key is filled."""
    trials = []
    for t, (r1, m) in enumerate(values):
        metrics = {
            "rank1": r1,
            "rank5": min(1.0, r1 + 0.1),
            "rank10": min(1.0, r1 + 0.2),
            "rank20": 1.0,
            "mAP": m,
            "mINP": m / 2,
        }
        cmc = [r1] + [min(1.0, r1 + 0.05 * k) for k in range(1, 20)]
        trials.append(TrialResult(t, metrics, cmc, num_query=3803, num_gallery=301, num_valid=3803))
    return EvalResult(protocol, "sysu", "single", "bn", False, "dedup", trials)


def test_mean_and_std_over_trials():
    r = _result([(0.70, 0.60), (0.80, 0.70)])
    assert r.mean["rank1"] == pytest.approx(0.75) and r.mean["mAP"] == pytest.approx(0.65)
    # Population standard deviation: |0.80 - 0.70| / 2.
    assert r.std["rank1"] == pytest.approx(0.05) and r.std["mINP"] == pytest.approx(0.025)
    assert r.summary("test/")["test/mAP_std"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="at least one trial"):
        EvalResult("sysu-all", "sysu", "single", "bn", False, "dedup", [])


def test_json_round_trip(tmp_path):
    r = _result([(0.7, 0.6), (0.8, 0.7), (0.75, 0.65)])
    path = r.save(tmp_path / "out" / "eval.json")
    back = EvalResult.load(path)
    assert back == r
    data = json.loads(path.read_text())
    assert data["mean"]["rank1"] == pytest.approx(0.75) and len(data["trials"]) == 3
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version"):
        EvalResult.from_dict(data)
    with pytest.raises(ValueError, match="malformed"):
        EvalResult.from_dict({"schema_version": 1, "protocol": "x"})


def test_table_shows_percentages_with_spread():
    a, b = _result([(0.7, 0.6), (0.8, 0.7)]), _result([(0.5, 0.4)])
    text = format_table([("MSCMNet", a), ("baseline", b)])
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("Method"))
    assert header.split() == ["Method", "R1", "R5", "R10", "R20", "mAP", "mINP"]
    row = next(line for line in lines if line.startswith("MSCMNet"))
    assert "75.00 ± 5.00" in row and "65.00 ± 5.00" in row
    single = next(line for line in lines if line.startswith("baseline"))
    assert "50.00" in single and "±" not in single  # one trial: no spread to show
    assert "sysu-all (single-shot, 2 trials" in text
    assert r"values in %" in a.table()


def test_cmc_plot_writes_a_png(tmp_path):
    r = _result([(0.7, 0.6), (0.8, 0.7)])
    path = r.plot_cmc(tmp_path / "cmc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Shorter curves (gallery under 20 images) are extended with their last value.
    short = EvalResult(
        "regdb-v2t",
        "regdb",
        "single",
        "bn",
        False,
        "standard",
        [TrialResult(0, _result([(0.5, 0.5)]).trials[0].metrics, [0.5, 0.9, 1.0], 3, 3, 3)],
    )
    np.testing.assert_allclose(short.cmc_curves(), [[0.5, 0.9, 1.0]])
    assert short.plot_cmc(tmp_path / "short.png").exists()
