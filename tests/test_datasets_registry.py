"""The dataset registry (mscm.datasets): each dataset is declared once, and the config schema, the CLI
choices, the protocol tables and the synthetic generator all follow that declaration."""

from __future__ import annotations

import typing

import pytest

from mscm.cli import build_parser
from mscm.config import ConfigError, load_run_config
from mscm.config.schema import DataConfig, EvalConfig, RunConfig
from mscm.data.synth import generate
from mscm.datasets import DATASETS, PROTOCOL_SPECS, get_dataset, get_protocol, read_dataset
from mscm.eval.protocols import candidates


def test_the_schema_choices_are_the_registry():
    hints = typing.get_type_hints(DataConfig)
    assert typing.get_args(hints["dataset"]) == tuple(DATASETS)
    assert set(typing.get_args(typing.get_type_hints(EvalConfig)["protocol"])) == set(PROTOCOL_SPECS)


def test_the_cli_choices_are_the_registry():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    evaluate, synth = sub.choices["evaluate"], sub.choices["synth"]
    layout = next(a for a in evaluate._actions if a.dest == "layout")
    protocol = next(a for a in evaluate._actions if a.dest == "protocol")
    assert list(layout.choices) == list(DATASETS) and list(protocol.choices) == list(PROTOCOL_SPECS)
    assert list(next(a for a in synth._actions if a.dest == "layout").choices) == list(DATASETS)
    for spec in DATASETS.values():  # the help names every dataset and setting as declared
        assert spec.title in evaluate.description
        assert all(p.title in evaluate.description for p in spec.protocols)


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_dataset_declares_a_consistent_whole(name):
    spec = get_dataset(name)
    assert spec.name == name and spec.train_classes > 0 and spec.protocols
    for p in spec.protocols:
        assert p.dataset == name and get_protocol(p.name) is p and p.title
    recipe = load_run_config(spec.recipe)  # the recipe trains on this dataset, on one of its protocols
    assert recipe.data.dataset == name and recipe.eval.protocol in spec.protocol_names


def test_paper_class_counts():
    # SYSU-MM01 395 (train_id + val_id), RegDB 206 per split, LLCM 713 training identities.
    assert {n: d.train_classes for n, d in DATASETS.items()} == {"sysu": 395, "regdb": 206, "llcm": 713}


@pytest.mark.parametrize("name", list(DATASETS))
def test_the_synthetic_plan_is_read_back_by_the_dataset_reader(tmp_path, name):
    spec = get_dataset(name)
    generate(name, tmp_path / name, 8, seed=1, height=32, width=16, progress=False)
    for split in spec.splits[:2]:
        ds = read_dataset(name, tmp_path / name, split=split)
        assert ds.name == name and ds.num_classes > 0
        for p in spec.protocols:
            pool = candidates(p, ds)
            assert len(pool.query) and len(pool.gallery)


def test_rules_follow_the_declaration():
    regdb = get_dataset("regdb")
    assert regdb.per_split and not regdb.drawn_gallery and regdb.splits == tuple(range(1, 11))
    assert not get_dataset("sysu").per_split and get_dataset("sysu").drawn_gallery
    base = load_run_config("regdb")
    with pytest.raises(ConfigError, match="RegDB uses its whole gallery") as err:
        RunConfig(data=base.data, eval=EvalConfig(protocol="regdb-v2t", gallery_mode="multi"))
    assert err.value.key == "eval.gallery_mode"
    with pytest.raises(ConfigError, match="RegDB has splits 1..10") as err:
        load_run_config("regdb", {"data.regdb_trial": 11})
    assert err.value.key == "data.regdb_trial"
    with pytest.raises(ValueError, match="unknown dataset 'market'"):
        get_dataset("market")
