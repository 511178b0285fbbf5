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
