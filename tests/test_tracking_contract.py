"""The run-naming rule of the MLflow contract."""

from mscm.tracking.contract import search_filter, short_value, trial_run_name


def test_trial_run_names_show_search_order_and_sampled_values():
    sampled = {"model.mimb_scales": 2, "loss.qct_margin": 0.7912, "optim.lr": 0.0016, "optim.name": "adamw"}
    assert trial_run_name(3, sampled) == "t03 mimb=2 margin=0.791 lr=1.6e-3 name=adamw"
    assert trial_run_name(12, {}) == "t12"


def test_short_values():
    assert short_value(0.0003) == "3.0e-4"
    assert short_value(0.5) == "0.5"
    assert short_value(3.0e38) == "3e+38"
    assert short_value(True) == "True"


def test_search_filter_quotes_the_name():
    assert search_filter("it's") == "tags.`mscm.search` = 'it\\'s' and tags.`mscm.kind` = 'search'"


def test_metric_schema_keeps_a_reports_series_and_drops_the_rest():
    from mscm.eval.scores import METRIC_KEYS as EVALUATED
    from mscm.tracking.metrics import METRIC_KEYS, epoch_metrics, run_summary, search_summary

    assert set(METRIC_KEYS) == set(EVALUATED)  # the schema names what the evaluation computes
    report = {
        "epoch": 2,
        "eval/epoch": 2,
        "mAP": 0.4,
        "rank1": 0.5,
        "mAP_std": 0.01,
        "loss/total": 3.0,
        "lr/head": 1e-3,
        "perf/images_per_s": 50.0,
        "perf/epoch_time_s": 4.0,
        "perf/loop_start_wall": 1.7e9,
        "perf/first_step_wall": 1.7e9,
        "best/epoch": 2,
        "best/is_best": 1.0,
        "selection_score": 0.4,
        "training_iteration": 2,
        "iterations_since_restore": 2,
        "params_m": 11.0,
        "loss/qct": float("nan"),
    }
    assert epoch_metrics(report) == {
        "eval/mAP": 0.4,
        "eval/rank1": 0.5,
        "loss/total": 3.0,
        "lr/head": 1e-3,
        "perf/images_per_s": 50.0,
        "perf/epoch_time_s": 4.0,
    }
    stale = {**report, "epoch": 3}  # a later report carries the epoch-2 evaluation again: not logged twice
    assert not any(k.startswith("eval/") for k in epoch_metrics(stale))
    best = run_summary({**report, "latency_ms": 3.5})
    assert best == {"best/mAP": 0.4, "best/rank1": 0.5, "best/epoch": 2.0, "params_m": 11.0, "latency_ms": 3.5}
    parent = search_summary({**best, "loss/total": 1.0}, ["completed", "failed", "stopped_early", "completed"])
    assert parent["best/mAP"] == 0.4 and "loss/total" not in parent
    assert (parent["trials/total"], parent["trials/completed"], parent["trials/failed"]) == (4, 2, 1)
