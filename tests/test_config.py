"""Typed configuration: loading, validation errors that name file and dotted key, overrides."""

from __future__ import annotations

import pytest
import yaml

from mscm.cli import main as cli_main
from mscm.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    builtin_configs,
    dump_yaml,
    flatten,
    from_dict,
    has_dotted,
    load_run_config,
    to_dict,
)

pytestmark = pytest.mark.portable  # the focused check under every supported Python (make test-py312)


def write(tmp_path, data, name="run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_are_the_papers_recipe():
    cfg = RunConfig()
    assert (cfg.data.height, cfg.data.width) == (384, 192)
    assert cfg.model.mimb_scales == 4 and cfg.model.alb_heads == 32
    assert cfg.loss.qct_margin == 0.7 and cfg.loss.qct_alpha == 0.0
    assert cfg.optim.lr == 0.1 and cfg.optim.backbone_lr_scale == 0.1 and cfg.optim.nesterov
    assert cfg.schedule.milestones == (25, 90, 120) and cfg.schedule.epochs == 150
    assert (cfg.data.identities_per_batch, cfg.data.instances_per_identity) == (6, 4)


@pytest.mark.parametrize("name", ["sysu", "regdb", "llcm", "smoke"])
def test_builtin_recipes_load(name):
    assert name in builtin_configs()
    cfg = load_run_config(name)
    assert cfg.data.dataset in cfg.eval.protocol


def test_file_round_trip(tmp_path):
    cfg = load_run_config("smoke", {"loss.qct_margin": 0.3})
    path = write(tmp_path, dump_yaml(cfg))
    again = load_run_config(path)
    assert again == cfg
    assert again.loss.qct_margin == 0.3


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"loss": {"qct_margn": 0.5}}, "loss.qct_margn", "unknown key"),
        ({"loss": {"qct_margin": "big"}}, "loss.qct_margin", "must be a number"),
        ({"loss": {"qct_margin": -1}}, "loss.qct_margin", ">= 0"),
        ({"model": {"mimb_scales": 5}}, "model.mimb_scales", "<= 4"),
        ({"model": {"mimb_scales": 2.5}}, "model.mimb_scales", "integer"),
        ({"model": {"backbone": "vgg"}}, "model.backbone", "one of"),
        ({"train": {"use_gpu": "yes"}}, "train.use_gpu", "true or false"),
        ({"augment": {"erasing_area": [0.5, 0.1]}}, "augment.erasing_area", "above high"),
        ({"augment": {"erasing_area": [0.1]}}, "augment.erasing_area", "2 items"),
        ({"model": {"alb_heads": 7}}, "model.alb_heads", "does not divide"),
        ({"data": {"height": 100}}, "data.height", "divisible by 16"),
        ({"eval": {"protocol": "regdb-v2t"}}, "eval.protocol", "not a protocol of sysu"),
        ({"schedule": {"milestones": [90, 25]}}, "schedule.milestones", "increasing"),
        ({"loss": {"qct_weight": 0, "ce_weight": 0}}, "loss.ce_weight", "nothing to train"),
    ],
)
def test_errors_name_file_and_dotted_key(tmp_path, data, key, words):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert err.value.key == key
    assert str(path) in str(err.value)
    assert words in str(err.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = write(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_run_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="built-in"):
        load_run_config("no-such-recipe")


def test_yaml_is_loaded_safely(tmp_path):
    evil = write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(evil)


def test_overrides_validate_and_reject_unknown_keys():
    cfg = RunConfig()
    new = apply_overrides(cfg, {"model.mimb_scales": 2, "optim.name": "adamw"})
    assert new.model.mimb_scales == 2 and new.optim.name == "adamw"
    assert cfg.model.mimb_scales == 4  # frozen original untouched
    with pytest.raises(ConfigError, match="model.mimb_scale"):
        apply_overrides(cfg, {"model.mimb_scale": 2})
    with pytest.raises(ConfigError, match="model.mimb_scales"):
        apply_overrides(cfg, {"model.mimb_scales": 9})


def test_flatten_and_has_dotted():
    flat = flatten(to_dict(RunConfig()))
    assert flat["loss.qct_margin"] == 0.7
    assert flat["data.synthetic.identities"] == 64
    assert all(has_dotted(RunConfig, k) for k in flat)
    assert not has_dotted(RunConfig, "loss.nope")
    assert not has_dotted(RunConfig, "loss.qct_margin.deeper")


def test_from_dict_accepts_int_for_float_but_not_bool_for_int():
    cfg = from_dict(RunConfig, {"loss": {"qct_margin": 1}})
    assert isinstance(cfg.loss.qct_margin, float)
    with pytest.raises(ConfigError, match="integer"):
        from_dict(RunConfig, {"schedule": {"epochs": True}})


def test_cli_config_prints_resolved_yaml(capsys):
    assert cli_main(["config", "-c", "smoke", "--set", "loss.qct_margin=0.25"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["loss"]["qct_margin"] == 0.25 and out["model"]["backbone"] == "resnet18"


def test_cli_config_error_is_reported_not_raised(capsys):
    assert cli_main(["config", "-c", "smoke", "--set", "loss.bogus=1"]) == 2
    assert "loss.bogus" in capsys.readouterr().err
