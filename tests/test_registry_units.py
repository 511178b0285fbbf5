"""Promotion pieces that need no trained model: trial selection from MLflow, settings, the decision
rule, version descriptions, and the clear errors of export / retrieval / model sources."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mscm.config import ConfigError, load_run_config
from mscm.eval import EvalResult, TrialResult
from mscm.registry.describe import (
    MAX_DESCRIPTION,
    VersionRecord,
    config_differences,
    metric_table,
    version_description,
    version_tags,
)
from mscm.registry.promote import decide
from mscm.registry.settings import promotion_settings
from mscm.tracking.trials import SearchRef, SelectionError, TrialChoice, find_search, select_trial

REPO = Path(__file__).resolve().parents[1]


# -- selection ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_search(tmp_path_factory):
    """A search record without models: selection only reads tags and metrics."""
    from mlflow import MlflowClient

    from mscm.tracking.mlflow_run import RunLogger

    uri = f"sqlite:///{tmp_path_factory.mktemp('select') / 'mlflow.db'}"
    parent = RunLogger(uri, "select-tests", run_name="s1", tags={"mscm.search": "s1", "mscm.kind": "search"})
    trials = {
        # trial: (best/mAP of its best checkpoint, eval/mAP of its last report, status, has a summary)
        "a": (0.50, 0.10, "stopped_early", True),  # best checkpoint wins although its last report is poor
        "b": (0.40, 0.45, "completed", True),  # best last report, worse best checkpoint
        "c": (0.90, 0.90, "failed", True),  # failed trials never win
        "d": (0.95, 0.95, "completed", False),  # no best/ summary (never evaluated): nothing to rank
    }
    for tid, (best, last, status, summary) in trials.items():
        run = RunLogger(
            uri, "select-tests", run_name=f"t-{tid}", parent_run_id=parent.run_id, tags={"ray_trial_id": tid}
        )
        run.log_metrics({"eval/mAP": best}, step=1)
        run.log_metrics({"eval/mAP": last}, step=2)
        tags = {"mscm.trial_status": status}
        if summary:
            run.log_metrics({"best/mAP": best, "best/rank1": 1 - best}, step=2)
            tags.update({"best_checkpoint": f"/nowhere/{tid}", "model_uri": f"models:/m-{tid}"})
        run.set_tags(tags)
    # a second search in the store must not leak into the first one
    other = RunLogger(uri, "select-tests", run_name="s2", tags={"mscm.search": "s2", "mscm.kind": "search"})
    run = RunLogger(uri, "select-tests", run_name="z", parent_run_id=other.run_id, tags={"ray_trial_id": "z"})
    run.log_metrics({"best/mAP": 0.99}, step=1)
    run.set_tags({"mscm.trial_status": "completed", "best_checkpoint": "/nowhere/z"})
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_selects_by_the_best_checkpoint_not_the_last_report(fake_search):
    search = find_search(fake_search, "s1")
    choice = select_trial(fake_search, search, "mAP")
    assert choice.trial_id == "a" and choice.ranked_by == "best/mAP" and choice.score == pytest.approx(0.5)
    assert choice.checkpoint_path == "/nowhere/a" and choice.best_metrics["rank1"] == pytest.approx(0.5)
    assert choice.model_uri == "models:/m-a" and choice.run_name == "t-a"
    # another metric ranks the other way
    assert select_trial(fake_search, search, "rank1").trial_id == "b"


def test_a_named_trial_and_the_reasons_for_refusing_one(fake_search):
    search = find_search(fake_search, "s1")
    assert select_trial(fake_search, search, "mAP", trial_id="b").trial_id == "b"
    with pytest.raises(SelectionError, match=r"c \(failed\)"):
        select_trial(fake_search, search, "mAP", trial_id="c")
    with pytest.raises(SelectionError, match=r"d \(no best/mAP\)"):
        select_trial(fake_search, search, "mAP", trial_id="d")
    with pytest.raises(SelectionError, match="no trial 'nope'"):
        select_trial(fake_search, search, "mAP", trial_id="nope")


def test_unknown_search_is_named(fake_search):
    with pytest.raises(SelectionError, match="no search named 'missing'"):
        find_search(fake_search, "missing")
    with pytest.raises(SelectionError, match="no MLflow experiment named 'nope'"):
        find_search(fake_search, "s1", experiment="nope")
    assert find_search(fake_search, "s2", experiment="select-tests").name == "s2"


# -- settings and decision ---------------------------------------------------------------------------


def test_settings_are_validated_with_the_key_named():
    s = promotion_settings({"margin": 0.01, "metric": "rank1", "trials": None})
    assert (s.margin, s.metric, s.trials) == (0.01, "rank1", 10)
    assert s.model_name("regdb") == "mscm-regdb"
    assert promotion_settings({"registered_model": "reid"}).model_name("sysu") == "reid"
    with pytest.raises(ConfigError, match="margin: must be >= 0"):
        promotion_settings({"margin": -0.1})
    with pytest.raises(ConfigError, match="metric: must be one of"):
        promotion_settings({"metric": "accuracy"})
    with pytest.raises(ConfigError, match="protocol: must be one of"):
        promotion_settings({"protocol": "market"})
    with pytest.raises(ConfigError, match="unknown key"):
        promotion_settings({"alias": "prod"})


@pytest.mark.parametrize(
    "cand, champ, margin, action",
    [
        (0.50, 0.40, 0.0, "champion"),
        (0.40, 0.40, 0.0, "challenger"),  # a tie does not replace the champion
        (0.39, 0.40, 0.0, "challenger"),
        (0.45, 0.40, 0.05, "challenger"),  # better, but not by more than the margin
        (0.46, 0.40, 0.05, "champion"),
    ],
)
def test_decision_rule(cand, champ, margin, action):
    assert decide(cand, champ, margin)[0] == action


# -- descriptions --------------------------------------------------------------------------------------


def _result(protocol: str, maps: list[float]) -> EvalResult:
    trials = [
        TrialResult(
            i,
            {"rank1": m + 0.1, "rank5": 0.9, "rank10": 0.95, "rank20": 1.0, "mAP": m, "mINP": m / 2},
            [m + 0.1, 0.9],
            10,
            20,
            10,
        )
        for i, m in enumerate(maps)
    ]
    return EvalResult(protocol, "sysu", "single", "bn", False, "dedup", trials)


def test_description_holds_what_a_reviewer_needs_and_fits_mlflow():
    cfg = load_run_config("smoke")
    results = {"sysu-all": _result("sysu-all", [0.40, 0.42]), "sysu-indoor": _result("sysu-indoor", [0.5, 0.5])}
    champ = {"sysu-all": _result("sysu-all", [0.30]), "sysu-indoor": _result("sysu-indoor", [0.35])}
    choice = TrialChoice(
        SearchRef("smoke-1", "p" * 32, "1"), "r" * 32, "trial_7", "completed", 0.41, "best/mAP", "/ckpt", "models:/m-7"
    )
    rec = VersionRecord(
        "mscm-sysu",
        choice,
        cfg,
        6,
        "a" * 64,
        "runs:/x/checkpoint",
        "b" * 64,
        results,
        "3",
        champ,
        "champion",
        "better than the champion by more than the margin",
        "f" * 16,
        "sysu at /data/sysu: test 96/96 ids",
        "mscm 0.1.0 (abc)",
        "q" * 32,
    )
    text = version_description(rec)
    assert len(text) <= MAX_DESCRIPTION
    for needle in (
        "smoke-1",
        "trial_7",
        "sysu-all (IR->VIS)",
        "sysu-indoor",
        "champion v3",
        "41.00 ± 1.00",
        "ffffffffffffffff",
        "mscm 0.1.0 (abc)",
        "model.backbone=resnet18",
        "Decision: champion",
    ):
        assert needle in text, needle
    tags = version_tags(rec)
    assert tags["mscm.metric.sysu-all.mAP"] == "0.410000" and tags["mscm.protocols"] == "sysu-all,sysu-indoor"
    assert tags["mscm.checkpoint_sha256"] == "a" * 64 and "resnet18" in tags["mscm.config"]
    # a long text is cut to MLflow's limit, never past it
    assert len(version_description(dataclasses.replace(rec, reason="x" * 4000))) == MAX_DESCRIPTION


def test_metric_table_and_config_differences():
    table = metric_table([("new", {"regdb-v2t": _result("regdb-v2t", [0.6])})])
    assert "| regdb-v2t (VIS->IR), 1 trial | new | 70.00 | 90.00 | 95.00 | 100.00 | 60.00 | 30.00 |" in table
    diffs = config_differences(load_run_config("smoke"))
    assert "data.height=128" in diffs and "model.backbone=resnet18" in diffs and "loss.qct_margin=0.7" not in diffs


# -- clear errors of the user-facing pieces -------------------------------------------------------------


def test_model_sources_that_are_not_models(tmp_path):
    from mscm.registry.source import ModelSourceError, checkpoint_for, load_embedder

    with pytest.raises(ModelSourceError, match="neither a checkpoint folder"):
        load_embedder(str(tmp_path))
    with pytest.raises(ModelSourceError, match="neither a checkpoint folder"):
        checkpoint_for(str(tmp_path / "x.pt"), tmp_path)
    with pytest.raises(ModelSourceError, match="not a registered model URI"):
        checkpoint_for("models:/a/b/c", tmp_path, f"sqlite:///{tmp_path / 'm.db'}")


def test_retrieval_input_errors(tmp_path):
    from mscm.registry.retrieve import RetrievalError, gallery_files, rank_gallery
    from mscm.registry.source import Embedder

    with pytest.raises(RetrievalError, match="not a folder"):
        gallery_files(tmp_path / "none")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(RetrievalError, match="no images"):
        gallery_files(tmp_path)
    Image.fromarray(np.zeros((8, 4, 3), np.uint8)).save(tmp_path / "g.png")
    (tmp_path / "q.jpg").write_bytes(b"not an image")
    model = Embedder(lambda x, m: x.float().flatten(1), 8, 4, "dummy")
    with pytest.raises(RetrievalError, match="unknown modality 'thermal-ish'"):
        rank_gallery(model, tmp_path / "g.png", tmp_path, "thermal-ish")
    with pytest.raises(RetrievalError, match="q.jpg"):
        rank_gallery(model, tmp_path / "q.jpg", tmp_path, "infrared")


def test_export_refuses_unknown_formats(tmp_path):
    from mscm.registry.export import ExportError, export_model

    with pytest.raises(ExportError, match="unknown format 'tensorrt'"):
        export_model(str(tmp_path), tmp_path / "m.plan", fmt="tensorrt")


def test_promote_job_script_is_the_cli():
    out = subprocess.run(
        [sys.executable, "jobs/promote.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "platform"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "--search" in out.stdout and "--dry-run" in out.stdout and "--margin" in out.stdout
