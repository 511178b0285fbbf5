"""The Optuna study's feedback from a search (mscm.tune.feedback), driven through Ray's searcher API
on a real SQLite Optuna storage: scheduler-stopped trials are PRUNED with every epoch's value, full
trials COMPLETE with their best epoch, failures FAIL."""

from __future__ import annotations

import optuna
import pytest

from mscm.tune.feedback import FeedbackOptunaSearch


def _space(trial):
    trial.suggest_float("loss.qct_margin", 0.3, 1.2)


@pytest.fixture
def searcher(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    return FeedbackOptunaSearch(
        _space,
        metric="mAP",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name="feedback",
        budget=3,
    ), storage


def _run(searcher, trial_id, values, *, error=False):
    assert searcher.suggest(trial_id) is not None
    for step, v in enumerate(values[:-1], 1):
        searcher.on_trial_result(trial_id, {"mAP": v, "training_iteration": step})
    # Tune hands the report that ended the trial to on_trial_complete only (never to on_trial_result).
    searcher.on_trial_complete(trial_id, {"mAP": values[-1], "training_iteration": len(values)}, error=error)


def test_states_values_and_intermediates(searcher):
    search, storage = searcher
    _run(search, "stopped_at_1", [0.30])  # ASHA's first rung
    _run(search, "stopped_at_2", [0.25, 0.33])
    _run(search, "full", [0.20, 0.41, 0.38])  # best epoch 2, last epoch lower
    assert search.suggest("failed")
    search.on_trial_complete("failed", None, error=True)
    study = optuna.load_study(study_name="feedback", storage=storage)
    t = {tr.number: tr for tr in study.trials}
    S = optuna.trial.TrialState
    assert [t[i].state for i in range(4)] == [S.PRUNED, S.PRUNED, S.COMPLETE, S.FAIL]
    assert t[0].intermediate_values == {1: 0.30} and t[0].value == pytest.approx(0.30)
    assert t[1].intermediate_values == {1: 0.25, 2: 0.33} and t[1].value == pytest.approx(0.33)
    assert t[2].intermediate_values == {1: 0.20, 2: 0.41, 3: 0.38}
    assert t[2].value == pytest.approx(0.41)  # the best epoch, as the search keeps its best checkpoint


def test_a_minimised_objective_completes_with_its_lowest_value(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    search = FeedbackOptunaSearch(
        _space,
        metric="loss",
        mode="min",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name="min",
        budget=2,
    )
    assert search.suggest("a")
    search.on_trial_result("a", {"loss": 3.0, "training_iteration": 1})
    search.on_trial_complete("a", {"loss": 3.5, "training_iteration": 2})
    trial = optuna.load_study(study_name="min", storage=storage).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == pytest.approx(3.0)


def test_the_searcher_pickles_with_its_feedback_state(searcher, tmp_path):
    search, _ = searcher
    assert search.suggest("t")
    search.on_trial_result("t", {"mAP": 0.3, "training_iteration": 1})
    path = tmp_path / "searcher.pkl"
    search.save(str(path))  # what Tune does at every experiment checkpoint
    restored = FeedbackOptunaSearch(_space, metric="mAP", mode="max", budget=3)
    restored.restore(str(path))
    restored.on_trial_complete("t", {"mAP": 0.35, "training_iteration": 2})
    trial = restored._ot_study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values == {1: 0.3, 2: 0.35}
