"""Warm start: the completed trials of an earlier study that the space could have sampled are copied into
the new study (real Optuna RDB storage); others are skipped and counted; bad sources are clear errors."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution

from mscm.tune.space_loader import load_search_space
from mscm.tune.warmstart import WARM_START_ATTR, warm_start_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "base": "smoke",
    "parameters": {
        "optim.lr": {"type": "log-float", "low": 1.0e-3, "high": 0.1},
        "optim.name": {"type": "categorical", "choices": ["sgd", "adamw"]},
        "optim.momentum": {
            "type": "float",
            "low": 0.8,
            "high": 0.95,
            "condition": {"param": "optim.name", "equals": "sgd"},
        },
    },
    "objective": {"metric": "mAP", "direction": "maximize"},
    "budget": {"trials": 4, "epochs": 3},
}


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return load_search_space(path)


@pytest.fixture
def storage(tmp_path):
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")


def _earlier_study(storage, space, n: int = 6) -> optuna.Study:
    """n trials of this space with known values, one failed trial, and two that this space could not draw."""
    study = optuna.create_study(
        study_name="earlier", storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3)
    )
    for i in range(n):
        trial = study.ask()
        space.define_by_run(trial)
        study.tell(trial, 0.1 * i)
    failed = study.ask()
    space.define_by_run(failed)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    lr = FloatDistribution(1e-4, 1.0, log=True)  # an earlier, wider space
    name = CategoricalDistribution(["sgd", "adamw"])
    study.add_trial(
        optuna.trial.create_trial(  # lr outside this space's range
            params={"optim.lr": 0.5, "optim.name": "adamw"},
            distributions={"optim.lr": lr, "optim.name": name},
            value=0.9,
        )
    )
    study.add_trial(
        optuna.trial.create_trial(  # a parameter this space does not search
            params={"optim.lr": 0.01, "optim.name": "adamw", "loss.qct_margin": 0.5},
            distributions={"optim.lr": lr, "optim.name": name, "loss.qct_margin": FloatDistribution(0.3, 1.2)},
            value=0.8,
        )
    )
    return study


def test_copies_the_completed_trials_this_space_could_draw(storage, space):
    earlier = _earlier_study(storage, space)
    warm = warm_start_study(storage, "earlier", "new", space)
    assert (warm.copied, warm.skipped) == (6, 2)
    new = optuna.load_study(study_name="new", storage=storage)
    assert len(new.trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in new.trials)
    originals = {f"earlier#{t.number}": t for t in earlier.trials}
    for t in new.trials:
        src = originals[t.user_attrs[WARM_START_ATTR]]
        assert t.params == src.params and t.values == src.values
        # Copied with this space's distributions, so the sampler models them with the new ranges.
        assert t.distributions["optim.lr"] == FloatDistribution(1e-3, 0.1, log=True)
    # The conditional parameter is present exactly where its condition holds.
    assert all(("optim.momentum" in t.params) == (t.params["optim.name"] == "sgd") for t in new.trials)


def test_the_sampler_of_the_new_study_models_the_copies(storage, space, tmp_path):
    """TPE draws from its seeded random start-up sampler until n_startup_trials are complete: in a fresh
    study its first draw is that random draw; after the warm start it is a TPE draw, and differs."""

    def first_lr(study_name: str) -> float:
        sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=5)
        study = optuna.create_study(
            study_name=study_name, storage=storage, direction="maximize", sampler=sampler, load_if_exists=True
        )
        trial = study.ask()
        space.define_by_run(trial)
        return trial.params["optim.lr"]

    _earlier_study(storage, space, n=6)
    warm_start_study(storage, "earlier", "new", space)
    fresh, warm = first_lr("fresh"), first_lr("new")
    assert fresh == first_lr("fresh-again")  # the start-up draw is reproducible...
    assert warm != fresh  # ...and not what the warm-started study draws
    assert 1e-3 <= warm <= 0.1


def test_a_choice_the_space_does_not_offer_is_skipped(storage, space):
    wider = optuna.create_study(study_name="wider", storage=storage, direction="maximize")
    lr = FloatDistribution(1e-3, 0.1, log=True)
    name = CategoricalDistribution(["sgd", "adamw", "rmsprop"])
    for choice in ("rmsprop", "adamw"):
        wider.add_trial(
            optuna.trial.create_trial(
                params={"optim.lr": 0.01, "optim.name": choice},
                distributions={"optim.lr": lr, "optim.name": name},
                value=0.5,
            )
        )
    warm = warm_start_study(storage, "wider", "new", space)
    assert (warm.copied, warm.skipped) == (1, 1)
    assert "1 skipped" in warm.describe()
    assert optuna.load_study(study_name="new", storage=storage).trials[0].params["optim.name"] == "adamw"


def test_errors_name_the_study_and_write_nothing(storage, space, tmp_path):
    with pytest.raises(RuntimeError, match="no study named 'missing'"):
        warm_start_study(storage, "missing", "new", space)

    optuna.create_study(study_name="minimise", storage=storage, direction="minimize")
    with pytest.raises(RuntimeError, match=r"'minimise' optimises \['minimize'\]"):
        warm_start_study(storage, "minimise", "new", space)

    optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    with pytest.raises(RuntimeError, match="'empty' has no completed trials"):
        warm_start_study(storage, "empty", "new", space)

    foreign = optuna.create_study(study_name="foreign", storage=storage, direction="maximize")
    foreign.add_trial(
        optuna.trial.create_trial(
            params={"loss.qct_margin": 0.5}, distributions={"loss.qct_margin": FloatDistribution(0.3, 1.2)}, value=0.5
        )
    )
    with pytest.raises(RuntimeError, match="none of the 1 completed trials of study 'foreign'"):
        warm_start_study(storage, "foreign", "new", space)

    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert "new" not in names  # no half-made target study after any of these errors

    _earlier_study(storage, space)
    warm_start_study(storage, "earlier", "new", space)
    with pytest.raises(RuntimeError, match="'new' already has trials"):
        warm_start_study(storage, "earlier", "new", space)


def test_pruned_trials_are_copied_with_their_state_and_every_epoch(storage, space):
    """A trial the scheduler stopped (PRUNED, mscm.tune.feedback) is an observation too: it is copied as
    PRUNED with its intermediate values, which Optuna's samplers read for pruned trials."""
    earlier = optuna.create_study(
        study_name="with-pruned", storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1)
    )
    full = earlier.ask()
    space.define_by_run(full)
    for step, v in ((1, 0.2), (2, 0.4)):
        full.report(v, step)
    earlier.tell(full, 0.4)
    stopped = earlier.ask()
    space.define_by_run(stopped)
    stopped.report(0.1, 1)
    earlier.tell(stopped, state=optuna.trial.TrialState.PRUNED)
    warm = warm_start_study(storage, "with-pruned", "new-from-pruned", space)
    assert (warm.copied, warm.skipped) == (2, 0)
    copies = {
        t.user_attrs[WARM_START_ATTR]: t
        for t in optuna.load_study(study_name="new-from-pruned", storage=storage).trials
    }
    S = optuna.trial.TrialState
    assert copies["with-pruned#0"].state == S.COMPLETE and copies["with-pruned#0"].intermediate_values == {
        1: 0.2,
        2: 0.4,
    }
    assert copies["with-pruned#1"].state == S.PRUNED and copies["with-pruned#1"].intermediate_values == {1: 0.1}
    assert copies["with-pruned#1"].value == pytest.approx(0.1)
