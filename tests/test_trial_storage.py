"""An ended trial's Ray checkpoints shrink to what anything still reads (issue 24): nothing once its MLflow
run holds the logged model; otherwise the best checkpoint's weights, without the optimiser state. Here on
folders laid out as Ray Train writes them, and through the spool's writer against a real MLflow store, in
the order the search queues it (after the model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WEIGHTS = 300_000  # bytes of a fake model.pt
STATE = 600_000  # bytes of a fake train_state.pt: AdamW's two moments, twice the weights


def _train_run(root: Path, epochs=(1, 2, 3)) -> Path:
    """A Train run's folder: one checkpoint per epoch, each with weights, optimiser state and metrics,
    plus Ray's own small files."""
    run = root / "train-trial_id=abc"
    for epoch in epochs:
        ckpt = run / f"checkpoint_2026-12-05_10-00-0{epoch}.000000"
        ckpt.mkdir(parents=True)
        (ckpt / "model.pt").write_bytes(b"w" * WEIGHTS)
        (ckpt / "train_state.pt").write_bytes(b"s" * STATE)
        (ckpt / "metrics.json").write_text(json.dumps({"epoch": epoch}))
    (run / "checkpoint_manager_snapshot.json").write_text("{}")
    return run


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_without_a_logged_model_only_the_best_weights_stay(tmp_path):
    from mscm.tracking.ray_storage import folder_bytes, prune_trial_checkpoints

    run = _train_run(tmp_path)
    best = next(run.glob("checkpoint_*-02.*"))
    before = folder_bytes(str(run))
    pruned = prune_trial_checkpoints(str(run), str(best), keep_weights=True)
    assert _files(run) == {f"{best.name}/model.pt", f"{best.name}/metrics.json", "checkpoint_manager_snapshot.json"}
    assert pruned.removed_checkpoints == 2 and pruned.kept == str(best)
    assert pruned.freed_bytes == before - folder_bytes(str(run)) == 2 * (WEIGHTS + STATE + 12) + STATE
    assert folder_bytes(str(run)) <= 1.1 * WEIGHTS + 1000  # issue 24's bound: the weights it keeps, small files
    again = prune_trial_checkpoints(str(run), str(best), keep_weights=True)  # the writer may apply it twice
    assert (again.removed_checkpoints, again.freed_bytes) == (0, 0)
    assert "best weights kept" in again.describe()


def test_with_a_logged_model_no_checkpoint_stays(tmp_path):
    from mscm.tracking.ray_storage import folder_bytes, prune_trial_checkpoints

    run = _train_run(tmp_path)
    pruned = prune_trial_checkpoints(str(run), str(next(run.glob("checkpoint_*"))), keep_weights=False)
    assert _files(run) == {"checkpoint_manager_snapshot.json"}
    assert (pruned.removed_checkpoints, pruned.kept) == (3, None)
    assert "none kept" in pruned.describe()
    assert folder_bytes(str(tmp_path / "nowhere")) == 0
    assert prune_trial_checkpoints(str(tmp_path / "nowhere"), None, keep_weights=True).removed_checkpoints == 0


@pytest.mark.parametrize("has_model", [True, False], ids=["model-logged", "no-model"])
def test_the_spooled_prune_follows_the_model_and_tags_the_run(tmp_path, has_model):
    """Queued as the search queues it: the model's record, the run's end, then the prune; the writer
    reads the run's model tag when it applies the prune, so a model not (yet) logged keeps the weights."""
    from mlflow import MlflowClient

    from mscm.tracking.contract import MODEL_URI_TAG, RAY_CHECKPOINTS_TAG
    from mscm.tracking.mlflow_run import RunLogger
    from mscm.tracking.spool import Spool
    from mscm.tracking.spooled_run import SpooledRun, stop_writer, writer_for

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = RunLogger(uri, "prune-test", run_name="search", artifact_location=str(tmp_path / "artifacts"))
    spool = Spool(tmp_path / "spool")
    writer = writer_for(spool, uri)
    run = SpooledRun(spool, writer, "t1", experiment="prune-test", run_name="t00", parent_run_id=parent.run_id, tags={})
    train_dir = _train_run(tmp_path / "ray_results")
    best = next(train_dir.glob("checkpoint_*-03.*"))
    if has_model:
        run.set_tags({MODEL_URI_TAG: "models:/m-abc"})
    run.end("FINISHED")
    run.prune_checkpoints(str(train_dir), str(best))
    try:
        assert writer.drain(60) == 0
    finally:
        stop_writer(spool, uri)
    run_id = spool.runs()["t1"]
    tag = MlflowClient(uri).get_run(run_id).data.tags[RAY_CHECKPOINTS_TAG]
    if has_model:
        assert _files(train_dir) == {"checkpoint_manager_snapshot.json"}, tag
        assert tag.startswith("3 removed") and "none kept" in tag
    else:
        assert _files(train_dir) == {
            f"{best.name}/model.pt",
            f"{best.name}/metrics.json",
            "checkpoint_manager_snapshot.json",
        }
        assert tag.startswith("2 removed") and "best weights kept" in tag
    parent.end()
