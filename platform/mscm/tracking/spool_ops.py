"""What each spool record does to the MLflow store (:mod:`mscm.tracking.writer` applies them).

Every function is idempotent: applying a record a second time (after a crash between the write and
the cursor's update) changes nothing more.
"""

from __future__ import annotations

from typing import Any

from .contract import MODEL_ERROR_TAG, MODEL_URI_TAG, RAY_CHECKPOINTS_TAG, TRIAL_TAG
from .spool import Spool


def run_id_of(client, spool: Spool, key: str) -> str:
    run_id = spool.runs().get(key)
    if run_id is None:
        raise LookupError(f"spool record for run {key!r} before the run was opened")
    return run_id


def op_run(client, spool: Spool, r: dict[str, Any]) -> None:
    """Open the run of key ``r['key']``: the one already in the store (same trial tag, same parent), or
    a new one. The run id is remembered in the spool for the records that follow."""
    from .mlflow_run import get_or_create_experiment

    known = spool.runs().get(r["key"])
    if known is not None:  # opened before
        _reopen(client, known, client.get_run(known).info.status)
        return
    exp_id = get_or_create_experiment(client, r["experiment"], client.tracking_uri)
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.{TRIAL_TAG} = '{r['key']}' and tags.mlflow.parentRunId = '{r['parent']}'",
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
        _reopen(client, run_id, found[0].info.status)
    else:
        tags = {**r["tags"], "mlflow.parentRunId": r["parent"]}
        run_id = client.create_run(exp_id, run_name=r["name"], tags=tags).info.run_id
    spool.remember_run(r["key"], run_id)


def op_attach(client, spool: Spool, r: dict[str, Any]) -> None:
    """Later records of key ``r['key']`` go to the existing run ``r['run_id']``."""
    if spool.runs().get(r["key"]) != r["run_id"]:
        spool.remember_run(r["key"], r["run_id"])


def _reopen(client, run_id: str, status: str) -> None:
    """A resumed trial continues its run: RUNNING again until it ends."""
    if status != "RUNNING":
        client.update_run(run_id, status="RUNNING")


def op_params(client, spool: Spool, r: dict[str, Any]) -> None:
    from mlflow.entities import Param

    run_id = run_id_of(client, spool, r["key"])
    have = client.get_run(run_id).data.params
    items = [Param(k, v) for k, v in r["params"].items() if have.get(k) != v]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def op_text(client, spool: Spool, r: dict[str, Any]) -> None:
    client.log_text(run_id_of(client, spool, r["key"]), r["text"], r["path"])


def op_dataset(client, spool: Spool, r: dict[str, Any]) -> None:
    from .contract import SPLIT_TAG
    from .datasets import DatasetInput, log_dataset

    run_id = run_id_of(client, spool, r["key"])
    data = DatasetInput(**r["dataset"])
    if not client.get_run(run_id).inputs.dataset_inputs:
        log_dataset(client, run_id, data)
    client.set_tag(run_id, SPLIT_TAG, data.split)


def op_metrics(client, spool: Spool, r: dict[str, Any]) -> None:
    from mlflow.entities import Metric

    run_id = run_id_of(client, spool, r["key"])
    items = [Metric(k, v, r["timestamp"], r["step"]) for k, v in r["metrics"].items()]
    for i in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[i : i + 500])


def op_artifact(client, spool: Spool, r: dict[str, Any]) -> None:
    import os
    import shutil
    import tempfile

    run_id = run_id_of(client, spool, r["key"])
    copy = spool.file(r["file"])
    if not copy.is_file():
        # Gone for good (removed by hand, or a disk's loss): a retry cannot bring it back, and retrying
        # for ever would hold every record behind it. The writer sets the record aside in refused.jsonl.
        raise LookupError(f"the spool's copy {copy} of {r['name']!r} is gone")
    with tempfile.TemporaryDirectory(prefix="mscm-spool-") as tmp:  # upload under its own name
        local = os.path.join(tmp, r["name"])
        shutil.copy2(copy, local)
        client.log_artifact(run_id, local, r["artifact_path"])


def op_model(client, spool: Spool, r: dict[str, Any]) -> None:
    from .model_logging import log_embedding_model

    run_id = run_id_of(client, spool, r["key"])
    if client.get_run(run_id).data.tags.get(MODEL_URI_TAG):
        return
    try:
        uri = log_embedding_model(client.tracking_uri, run_id, r["checkpoint"])
    except (OSError, ValueError) as e:  # the checkpoint is gone or unreadable: say so on the run
        client.set_tag(run_id, MODEL_ERROR_TAG, f"{type(e).__name__}: {e}"[:5000])
        return
    client.set_tag(run_id, MODEL_URI_TAG, uri)


def op_tags(client, spool: Spool, r: dict[str, Any]) -> None:
    run_id = run_id_of(client, spool, r["key"])
    for k, v in r["tags"].items():
        client.set_tag(run_id, k, str(v))


def op_end(client, spool: Spool, r: dict[str, Any]) -> None:
    from .mlflow_run import terminate

    run_id = run_id_of(client, spool, r["key"])
    run = client.get_run(run_id)
    if run.info.status != r["status"] or run.info.end_time is None:
        terminate(client, run_id, r["status"])


def op_prune(client, spool: Spool, r: dict[str, Any]) -> None:
    """An ended trial's Ray checkpoints shrink once its record is in MLflow: queued after its model, so
    the model is logged from the checkpoint first (:mod:`mscm.tracking.ray_storage`)."""
    from .ray_storage import prune_trial_checkpoints

    run_id = run_id_of(client, spool, r["key"])
    has_model = bool(client.get_run(run_id).data.tags.get(MODEL_URI_TAG))
    pruned = prune_trial_checkpoints(r["train_dir"], r.get("best"), keep_weights=not has_model)
    client.set_tag(run_id, RAY_CHECKPOINTS_TAG, pruned.describe())


OPS = {
    "run": op_run,
    "attach": op_attach,
    "params": op_params,
    "text": op_text,
    "dataset": op_dataset,
    "metrics": op_metrics,
    "artifact": op_artifact,
    "model": op_model,
    "tags": op_tags,
    "end": op_end,
    "prune": op_prune,
}
