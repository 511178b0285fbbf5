"""Search spaces: the shipped files, validation errors that name file and key, define-by-run
sampling on a real Optuna study, pickling and seeding."""

from __future__ import annotations

import copy
import pickle

import optuna
import optuna.samplers
import pytest
import yaml

from mscm.config import ConfigError, RunConfig, load_run_config
from mscm.tracking.mlflow_run import config_params
from mscm.tune.space import SearchSpace
from mscm.tune.space_loader import load_search_space
from mscm.tune.spaces import find_space, shipped_spaces

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A small valid space; error cases below change one thing in a deep copy of it.
VALID = {
    "base": "smoke",
    "overrides": {"eval.trials": 1},
    "parameters": {
        "loss.qct_margin": {"type": "float", "low": 0.3, "high": 1.2},
        "optim.lr": {"type": "log-float", "low": 1.0e-3, "high": 0.1},
        "model.mimb_scales": {"type": "int", "low": 0, "high": 4},
        "optim.name": {"type": "categorical", "choices": ["sgd", "adamw"]},
        "optim.momentum": {
            "type": "float",
            "low": 0.8,
            "high": 0.95,
            "condition": {"param": "optim.name", "equals": "sgd"},
        },
    },
    "objective": {"metric": "mAP", "direction": "maximize"},
    "budget": {"trials": 4, "epochs": 3, "grace_period": 1, "reduction_factor": 2},
}

# Exercises every parameter type, steps, list choices and a two-level condition chain.
RICH = {
    "base": "smoke",
    "parameters": {
        "optim.momentum": {  # listed before its condition's parameter: must be sampled after it
            "type": "float",
            "low": 0.5,
            "high": 0.9,
            "step": 0.1,
            "condition": {"param": "optim.name", "in": ["sgd"]},
        },
        "optim.name": {"type": "categorical", "choices": ["sgd", "adamw"]},
        "optim.nesterov": {
            "type": "categorical",
            "choices": [True, False],
            "condition": [{"param": "optim.name", "equals": "sgd"}, {"param": "model.mimb_scales", "in": [2, 4]}],
        },
        "model.mimb_scales": {"type": "int", "low": 0, "high": 4, "step": 2},
        "optim.lr": {"type": "log-float", "low": 1.0e-4, "high": 0.5},
        "schedule.milestones": {"type": "categorical", "choices": [[1], [1, 2]]},
        "train.grad_clip": {"type": "int", "low": 1, "high": 3},  # int into a float | None field
        "data.iterations_per_epoch": {
            "type": "int",
            "low": 1,
            "high": 9,
            "condition": {"param": "optim.nesterov", "equals": True},  # conditional on a conditional one
        },
    },
    "objective": [{"metric": "mAP", "direction": "maximize"}, {"metric": "params_m", "direction": "minimize"}],
    "budget": {"trials": 2, "epochs": 3, "scheduler": "none"},
    "resources": {"workers": 2, "cpus_per_worker": 1, "gpus_per_worker": 0},
    "sampler": {"name": "random", "seed": 3},
}


def write(tmp_path, data, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def sample(space: SearchSpace, n: int, tmp_path=None, tag: str = "s", sampler=None) -> list[dict]:
    """``n`` define-by-run trials on a real Optuna study, stored in ``<tmp_path>/optuna.db`` (study
    ``tag``) or, without ``tmp_path``, in memory (sqlite commits cost ~0.3 s a trial here)."""
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'optuna.db'}" if tmp_path else None,
        study_name=tag,
        sampler=sampler or space.make_sampler(),
        directions=space.directions,
    )
    out = []
    for _ in range(n):
        trial = study.ask()
        values = space.define_by_run(trial)
        out.append(values)
        score = [float(len(values))] * len(space.objectives)
        study.tell(trial, score if space.multi_objective else score[0])
    return out


# -- shipped spaces ----------------------------------------------------------------------------


def test_shipped_spaces_load_by_name():
    assert {"mimb", "smoke"} <= set(shipped_spaces())

    smoke = load_search_space("smoke")
    assert (smoke.template.data.height, smoke.template.data.width) == (64, 32)  # a third of the recipe's cost
    assert smoke.template.data.val_identities > 0  # the embedded default selects on held-out ids
    assert (smoke.budget.trials, smoke.budget.epochs, smoke.budget.scheduler) == (6, 4, "asha")
    assert (smoke.budget.grace_period, smoke.budget.reduction_factor) == (1, 2)
    assert smoke.resources.workers == 1 and smoke.resources.cpus_per_worker == 2 and not smoke.resources.use_gpu
    assert smoke.template.train.num_workers == 1 and smoke.template.schedule.epochs == 4
    assert not smoke.template.train.use_gpu

    mimb = load_search_space("mimb")
    assert mimb.base == "sysu" and mimb.template.data.dataset == "sysu"
    assert mimb.budget.epochs == 150 and mimb.budget.scheduler == "asha" and mimb.budget.grace_period == 10
    assert mimb.resources.workers == 1 and mimb.resources.gpus_per_worker == 1
    assert mimb.template.train.use_gpu and mimb.template.train.gpus_per_worker == 1
    keys = {p.key for p in mimb.parameters}
    assert {
        "loss.qct_margin",
        "loss.qct_alpha",
        "model.mimb_scales",
        "augment.grayscale_p",
        "augment.channel_exchange_p",
        "augment.adaptive_gray_p",
        "augment.channel_scale_p",
        "augment.erasing_p",
        "optim.lr",
        "optim.weight_decay",
        "optim.name",
        "optim.momentum",
    } == keys
    assert mimb.parameter("optim.lr").type == "log-float"
    assert mimb.parameter("optim.momentum").conditions[0].param == "optim.name"
    assert (mimb.metric, mimb.mode) == ("mAP", "max")


def test_path_and_name_resolve_to_the_same_file():
    by_name = find_space("smoke")
    assert by_name.name == "smoke.yaml"
    assert load_search_space(by_name) == load_search_space("smoke")


def test_project_folder_spaces_come_first(tmp_path, monkeypatch):
    (tmp_path / "search_spaces").mkdir()
    write(tmp_path / "search_spaces", VALID, "mine.yaml")
    monkeypatch.setenv("MSCM_HOME", str(tmp_path))
    assert find_space("mine") == tmp_path / "search_spaces" / "mine.yaml"
    assert load_search_space("smoke").name == "smoke"  # the package copy is still found


def test_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="shipped: .*mimb"):
        find_space("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_search_space(tmp_path / "missing.yaml")


# -- validation errors -----------------------------------------------------------------------


def changed(path: str, value):
    """A copy of VALID with the item at ``path`` ("section/key/...": keys may contain dots) set or deleted."""
    data = copy.deepcopy(VALID)
    node = data
    parts = path.split("/")
    for p in parts[:-1]:
        node = node[p]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return data


DELETE = object()
P = "parameters"


@pytest.mark.parametrize(
    "edit, key, words",
    [
        (("paramters", {}), "paramters", "unknown key"),
        (("budget", DELETE), "budget", "is required"),
        (
            (f"{P}/loss.qct_margn", {"type": "float", "low": 0, "high": 1}),
            f"{P}.loss.qct_margn",
            "unknown run-config key",
        ),
        ((f"{P}/loss", {"type": "float", "low": 0, "high": 1}), f"{P}.loss", "section"),
        ((f"{P}/loss.qct_margin/low", 1.2), f"{P}.loss.qct_margin", "empty or inverted"),
        ((f"{P}/loss.qct_margin/low", 2.0), f"{P}.loss.qct_margin", "low 2.0 >= high 1.2"),
        ((f"{P}/optim.lr/low", 0.0), f"{P}.optim.lr.low", "must be positive"),
        ((f"{P}/optim.lr/low", "1e-4"), f"{P}.optim.lr.low", "write 1.0e-4"),
        ((f"{P}/loss.qct_margin/type", "uniform"), f"{P}.loss.qct_margin.type", "must be one of"),
        ((f"{P}/loss.qct_margin/step", 0.5), f"{P}.loss.qct_margin.step", "not a multiple of step"),
        ((f"{P}/loss.qct_margin/choices", [1]), f"{P}.loss.qct_margin.choices", "unknown key"),
        ((f"{P}/model.mimb_scales/type", "float"), f"{P}.model.mimb_scales.type", "use int or categorical"),
        ((f"{P}/model.mimb_scales/low", 0.5), f"{P}.model.mimb_scales.low", "integer"),
        ((f"{P}/model.mimb_scales/high", 5), f"{P}.model.mimb_scales.high", "must be <= 4, got 5"),
        ((f"{P}/optim.name", {"type": "float", "low": 0, "high": 1}), f"{P}.optim.name.type", "use categorical"),
        ((f"{P}/optim.name/choices", []), f"{P}.optim.name.choices", "non-empty"),
        ((f"{P}/optim.name", {"type": "categorical"}), f"{P}.optim.name.choices", "is required"),
        ((f"{P}/optim.name/choices", ["sgd", "rmsprop"]), f"{P}.optim.name.choices[1]", "must be one of"),
        ((f"{P}/optim.name/choices", ["sgd", "sgd"]), f"{P}.optim.name.choices[1]", "listed twice"),
        (
            (f"{P}/model.alb_heads", {"type": "categorical", "choices": [4, 7]}),
            f"{P}.model.alb_heads.choices[1]",
            "does not divide",
        ),
        (
            (f"{P}/loss.label_smoothing", {"type": "categorical", "choices": [0.1, "big"]}),
            f"{P}.loss.label_smoothing.choices[1]",
            "must be a number",
        ),
        (
            (f"{P}/model.mimb_scales", {"type": "categorical", "choices": [1, 2.0]}),
            f"{P}.model.mimb_scales.choices[1]",
            "integer",
        ),
        (
            (f"{P}/optim.momentum/condition", {"param": "optim.nam", "equals": "sgd"}),
            f"{P}.optim.momentum.condition.param",
            "not a parameter",
        ),
        (
            (f"{P}/optim.momentum/condition", {"param": "optim.momentum", "equals": 0.9}),
            f"{P}.optim.momentum.condition.param",
            "itself",
        ),
        (
            (f"{P}/optim.momentum/condition", {"param": "optim.lr", "equals": 0.01}),
            f"{P}.optim.momentum.condition.param",
            "categorical or int",
        ),
        (
            (f"{P}/optim.momentum/condition", {"param": "optim.name", "equals": "adam"}),
            f"{P}.optim.momentum.condition.equals",
            "never sampled",
        ),
        (
            (f"{P}/optim.momentum/condition", {"param": "model.mimb_scales", "in": [5]}),
            f"{P}.optim.momentum.condition.in",
            "never sampled",
        ),
        (
            (f"{P}/optim.momentum/condition", {"param": "optim.name", "in": []}),
            f"{P}.optim.momentum.condition.in",
            "non-empty",
        ),
        ((f"{P}/optim.momentum/condition", {"param": "optim.name"}), f"{P}.optim.momentum.condition", "exactly one"),
        (
            (f"{P}/optim.momentum/condition", {"param": "eval.trials", "equals": 1}),
            f"{P}.optim.momentum.condition.param",
            "not a parameter",
        ),
        ((f"{P}/eval.trials", {"type": "int", "low": 1, "high": 3}), f"{P}.eval.trials", "also fixed in overrides"),
        ((f"{P}/schedule.epochs", {"type": "int", "low": 1, "high": 3}), f"{P}.schedule.epochs", "budget.epochs"),
        (("overrides/train.num_workers", 2), "overrides.train.num_workers", "resources.workers"),
        (("overrides/loss.qct_margn", 2), "overrides.loss.qct_margn", "unknown run-config key"),
        (("overrides/model.mimb_scales", 9), "overrides.model.mimb_scales", "<= 4"),
        (("base", "nosuchrecipe"), "base", "built-in"),
        (("objective/direction", "max"), "objective.direction", "maximize"),
        (("objective", {"direction": "maximize"}), "objective.metric", "is required"),
        (
            (
                "objective",
                [{"metric": "mAP", "direction": "maximize"}, {"metric": "params_m", "direction": "minimize"}],
            ),
            "budget.scheduler",
            "scheduler: none",
        ),
        (("overrides/eval.every_n_epochs", 2), "overrides.eval.every_n_epochs", "evaluate every epoch"),
        (
            (f"{P}/eval.every_n_epochs", {"type": "int", "low": 1, "high": 3}),
            f"{P}.eval.every_n_epochs",
            "cannot be searched",
        ),
        (("budget/trials", 0), "budget.trials", ">= 1"),
        (("budget/grace_period", 4), "budget.grace_period", "beyond the 3 epochs"),
        (("budget/reduction_factor", 1), "budget.reduction_factor", "> 1"),
        (("budget/scheduler", "hyperband"), "budget.scheduler", "must be one of"),
        (("budget", {"trials": 2, "scheduler": "none", "grace_period": 1}), "budget.grace_period", "only applies"),
        (("resources", {"gpus_per_worker": -1}), "resources.gpus_per_worker", ">= 0"),
        (("resources", {"worker": 2}), "resources.worker", "unknown key"),
        (("sampler", {"name": "tpe", "population_size": 4}), "sampler.population_size", "not an option of the tpe"),
        (("sampler", {"name": "bayes"}), "sampler.name", "must be one of"),
        (("sampler", {"name": "tpe", "group": True, "multivariate": False}), "sampler.group", "multivariate"),
    ],
)
def test_errors_name_file_and_key(tmp_path, edit, key, words):
    path = write(tmp_path, changed(*edit))
    with pytest.raises(ConfigError) as err:
        load_search_space(path)
    assert err.value.key == key, str(err.value)
    assert err.value.source == str(path)
    assert words in str(err.value)


def test_evaluation_every_few_epochs_is_fine_when_the_objective_is_not_evaluated(tmp_path):
    data = changed("overrides/eval.every_n_epochs", 2)
    data["objective"] = {"metric": "params_m", "direction": "minimize"}
    assert load_search_space(write(tmp_path, data)).template.eval.every_n_epochs == 2


def test_cyclic_conditions_are_rejected(tmp_path):
    data = copy.deepcopy(VALID)
    data[P]["model.alb_heads"] = {
        "type": "categorical",
        "choices": [4, 8],
        "condition": {"param": "model.mimb_scales", "in": [1, 2]},
    }
    data[P]["model.mimb_scales"]["condition"] = {"param": "optim.name", "equals": "sgd"}
    data[P]["optim.name"]["condition"] = {"param": "model.alb_heads", "equals": 4}
    with pytest.raises(ConfigError, match="cyclic condition: .* -> .* -> .* -> ") as err:
        load_search_space(write(tmp_path, data))
    assert err.value.key.startswith(P) and err.value.key.endswith(".condition")


def test_non_mapping_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_search_space(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_search_space(write(tmp_path, "base: [smoke\n"))


def test_relative_base_path_starts_at_the_space_file(tmp_path):
    (tmp_path / "runs").mkdir()
    write(
        tmp_path / "runs",
        {"name": "mine", "model": {"backbone": "resnet18", "alb_heads": 4}, "data": {"height": 128, "width": 64}},
        "mine.yaml",
    )
    (tmp_path / "spaces").mkdir()
    data = changed("base", "../runs/mine.yaml")
    space = load_search_space(write(tmp_path / "spaces", data))
    assert space.template.name == "mine" and space.template.model.backbone == "resnet18"
    assert space.template.eval.trials == 1  # overrides applied on top


def test_defaults_come_from_the_base_config(tmp_path):
    data = changed("budget", {"trials": 2})
    space = load_search_space(write(tmp_path, data))
    base = load_run_config("smoke")
    assert space.budget.epochs == base.schedule.epochs
    assert (space.budget.scheduler, space.budget.grace_period, space.budget.reduction_factor) == ("asha", 1, 4)
    assert space.resources.workers == base.train.num_workers and not space.resources.use_gpu
    assert space.sampler.name == "tpe" and space.sampler.seed == 0
    assert space.sampler.options["group"] is True  # a conditional parameter exists


# -- sampling ------------------------------------------------------------------------------------


def test_define_by_run_respects_ranges_types_and_conditions(tmp_path):
    space = load_search_space(write(tmp_path, RICH))
    order = [p.key for p in space.parameters]
    assert order.index("optim.name") < order.index("optim.momentum")
    assert order.index("optim.nesterov") < order.index("data.iterations_per_epoch")

    base = space.template
    draws = sample(space, 30, tmp_path)
    for v in draws:
        assert isinstance(v["optim.lr"], float) and 1e-4 <= v["optim.lr"] <= 0.5
        assert v["model.mimb_scales"] in (0, 2, 4) and type(v["model.mimb_scales"]) is int
        assert type(v["train.grad_clip"]) is int and 1 <= v["train.grad_clip"] <= 3
        assert v["schedule.milestones"] in ([1], [1, 2])
        sgd = v["optim.name"] == "sgd"
        assert ("optim.momentum" in v) == sgd
        if sgd:
            assert round(v["optim.momentum"], 6) in (0.5, 0.6, 0.7, 0.8, 0.9)
        assert ("optim.nesterov" in v) == (sgd and v["model.mimb_scales"] in (2, 4))
        assert ("data.iterations_per_epoch" in v) == (v.get("optim.nesterov") is True)

        cfg = space.run_config(v)
        assert isinstance(cfg, RunConfig)
        assert cfg.optim.lr == v["optim.lr"] and cfg.schedule.milestones == tuple(v["schedule.milestones"])
        assert cfg.train.num_workers == 2 and cfg.schedule.epochs == 3
        if not sgd:
            assert cfg.optim.momentum == base.optim.momentum  # inactive: keeps the base value
        if "data.iterations_per_epoch" not in v:
            assert cfg.data.iterations_per_epoch == base.data.iterations_per_epoch
    # both branches of every condition were seen, so the assertions above were exercised
    assert {v["optim.name"] for v in draws} == {"sgd", "adamw"}
    assert any("data.iterations_per_epoch" in v for v in draws)
    assert any(v["optim.name"] == "sgd" and "optim.nesterov" not in v for v in draws)


def test_study_records_the_sampled_values(tmp_path):
    space = load_search_space(write(tmp_path, RICH))
    draws = sample(space, 6, tmp_path)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for trial, v in zip(study.trials, draws):
        assert set(trial.params) == set(v)
        assert (
            trial.params["schedule.milestones"]
            == yaml.safe_dump(v["schedule.milestones"], default_flow_style=True).strip()
        )


def test_run_config_rejects_foreign_or_inactive_keys(tmp_path):
    space = load_search_space(write(tmp_path, VALID))
    with pytest.raises(ConfigError, match="not a parameter"):
        space.run_config({"loss.qct_weight": 2.0})
    with pytest.raises(ConfigError, match="condition does not hold"):
        space.run_config({"optim.name": "adamw", "optim.momentum": 0.9})
    with pytest.raises(ConfigError, match="<= 4"):
        space.run_config({"model.mimb_scales": 7})
    assert space.run_config({}) == space.template


def test_pickled_define_by_run_samples_the_same(tmp_path):
    space = load_search_space("smoke")
    fn = pickle.loads(pickle.dumps(space.define_by_run))
    assert fn.__self__ == space
    a = sample(space, 4)
    b = sample(pickle.loads(pickle.dumps(space)), 4)
    assert a == b


def test_seeded_tpe_repeats_and_other_seeds_differ(tmp_path):
    space = load_search_space(write(tmp_path, changed("sampler", {"name": "tpe", "seed": 7, "n_startup_trials": 2})))
    first = sample(space, 5)  # 2 random start-up trials, then TPE proper
    again = sample(space, 5)
    assert first == again
    other = sample(space, 5, sampler=optuna.samplers.TPESampler(seed=8, n_startup_trials=2))
    assert other != first


@pytest.mark.parametrize(
    "name, cls",
    [
        ("tpe", "TPESampler"),
        ("random", "RandomSampler"),
        ("qmc", "QMCSampler"),
        ("gp", "GPSampler"),
        ("nsgaii", "NSGAIISampler"),
    ],
)
def test_sampler_kinds(tmp_path, name, cls):
    space = load_search_space(write(tmp_path, changed("sampler", {"name": name, "seed": 1})))
    assert type(space.make_sampler()).__name__ == cls
    assert space.make_sampler() is not space.make_sampler()


def test_cmaes_needs_its_package(tmp_path):
    import importlib.util

    path = write(tmp_path, changed("sampler", {"name": "cmaes", "n_startup_trials": 3}))
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(ConfigError, match="pip install cmaes") as err:
            load_search_space(path)
        assert err.value.key == "sampler.name"
    else:
        assert type(load_search_space(path).make_sampler()).__name__ == "CmaEsSampler"


def test_multi_objective_gives_lists(tmp_path):
    space = load_search_space(write(tmp_path, RICH))
    assert space.multi_objective
    assert space.metric == ["mAP", "params_m"] and space.mode == ["max", "min"]
    assert space.directions == ["maximize", "minimize"]


def test_mlflow_params_match_the_logged_config(tmp_path):
    space = load_search_space(write(tmp_path, RICH))
    for v in sample(space, 8):
        params = space.mlflow_params(v, prefix="")
        assert set(params) == set(v)
        full = config_params(space.run_config(v))
        assert all(params[k] == full[k] and isinstance(params[k], str) for k in params)
        assert params["schedule.milestones"] in ("[1]", "[1, 2]")
    assert set(space.mlflow_params({"optim.name": "adamw"}, prefix="hp/")) == {"hp/optim.name"}


@pytest.mark.parametrize(
    "run_edit, space_edit",
    [
        # a number written as PyYAML-1.1 text, in a run config and in a parameter's range
        ({"optim": {"lr": "1e-4"}}, (f"{P}/loss.qct_margin/low", "1e-4")),
        # a bound of the schema, as a run-config value and as a searched range end
        ({"model": {"mimb_scales": 5}}, (f"{P}/model.mimb_scales/high", 5)),
        # an integer field given a fraction
        ({"schedule": {"epochs": 2.5}}, ("budget/epochs", 2.5)),
        # a choice outside a Literal
        ({"eval": {"gallery_mode": "many"}}, ("budget/scheduler", "many")),
        # true/false fields
        ({"train": {"channels_last": "yes"}}, ("sampler", {"name": "tpe", "multivariate": "yes"})),
    ],
)
def test_the_same_mistake_gets_the_same_message_in_a_run_config_and_a_search_space(tmp_path, run_edit, space_edit):
    """Both files are read by one validator (mscm.config.from_dict): the problem text is the same."""
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump(run_edit))
    with pytest.raises(ConfigError) as run_err:
        load_run_config(run_file)
    with pytest.raises(ConfigError) as space_err:
        load_search_space(write(tmp_path, changed(*space_edit)))
    run_problem, space_problem = run_err.value.problem, space_err.value.problem
    if "must be <=" in run_problem:  # the search space names the run config's own error inside its own
        assert run_problem in space_problem
    else:
        # the same wording; only the allowed values of a Literal differ
        assert run_problem.split(" [")[0].split(", got")[0] == space_problem.split(" [")[0].split(", got")[0]
        assert run_problem.startswith("must be") and run_problem.split(", got")[1] == space_problem.split(", got")[1]


def test_unknown_keys_are_reported_alike(tmp_path):
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"optim": {"lrr": 0.1}}))
    with pytest.raises(ConfigError) as run_err:
        load_run_config(run_file)
    with pytest.raises(ConfigError) as space_err:
        load_search_space(write(tmp_path, changed("budget/trails", 3)))
    assert run_err.value.key == "optim.lrr" and space_err.value.key == "budget.trails"
    assert run_err.value.problem.startswith("unknown key (known keys: ")
    assert space_err.value.problem.startswith("unknown key (known keys: ")
    assert "trials" in space_err.value.problem
