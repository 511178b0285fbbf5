"""MLflow logging for one training run (a single `mscm train`, or one trial of a search).

Everything goes through an explicit run id with :class:`mlflow.MlflowClient`, so it is safe to call
from callbacks in long-lived Ray processes without touching MLflow's global "active run".
Writes for one run come from one process at a time (SQLite has a single writer).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..config import RunConfig, dump_yaml, flatten, to_dict
from ..paths import default_tracking_uri
from .contract import CHECKPOINT_TAG, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, MODEL_URI_TAG
from .metrics import run_summary
from .store_open import open_client
from .uris import artifact_root_for, parse_tracking_uri, require_artifact_location

MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


def resolve_tracking_uri(uri: str | None) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else the SQLite store under the project.
    Creates nothing: writers make the store's folder (:class:`RunLogger`), after the preflight."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def get_or_create_experiment(client, name: str, tracking_uri: str, artifact_location: str | None = None) -> str:
    """The experiment's id, made if missing. When several processes start on one new store at once, the
    loser of the race to create it reads the winner's."""
    from mlflow.exceptions import MlflowException

    try:
        return _get_or_create_experiment(client, name, tracking_uri, artifact_location)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def _get_or_create_experiment(client, name: str, tracking_uri: str, artifact_location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # experiments made before the tag existed
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    # A local store keeps its artifacts beside it, and a database store where it is told, never in ./mlruns
    # of whatever the CWD is.
    require_artifact_location(parse_tracking_uri(tracking_uri), artifact_location)
    return client.create_experiment(
        name,
        artifact_location=artifact_root_for(tracking_uri, artifact_location),
        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
    )


class RedactingStream:
    """stdout that masks passwords: MLflow prints "View run ... at: <tracking URI>" when a run of a
    server store ends, with the URI's user:password in it."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        from ..redact import redact

        return self.stream.write(redact(text))

    def flush(self) -> None:
        self.stream.flush()


def terminate(client, run_id: str, status: str) -> None:
    """``client.set_terminated``, with what MLflow prints on the way redacted."""
    import contextlib
    import sys

    with contextlib.redirect_stdout(RedactingStream(sys.stdout)):
        client.set_terminated(run_id, status=status)


def config_params(cfg: RunConfig) -> dict[str, str]:
    """The config as MLflow params, every URI's password redacted (mscm.redact)."""
    from ..redact import redact

    return {k: redact(str(v))[:MAX_PARAM_LEN] for k, v in flatten(to_dict(cfg)).items()}


def metric_values(metrics: dict[str, Any]) -> dict[str, float]:
    """What MLflow records of a report: its finite numbers, under names MLflow accepts ('@' is not one)."""
    return {k.replace("@", "_"): v for k, v in finite_metrics(metrics).items()}


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite entries only (MLflow rejects NaN/inf in some stores; strings are not metrics)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[k] = float(v)
    return out


class RunLogger:
    """One MLflow run: params, per-epoch metrics, artifacts, the logged model, the final status."""

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        *,
        run_name: str,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        artifact_location: str | None = None,  # for a new experiment (tracking.artifact_location)
    ):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.client = open_client(self.tracking_uri)
        self.experiment_id = get_or_create_experiment(self.client, experiment, self.tracking_uri, artifact_location)
        if run_id is None:
            all_tags = dict(tags or {})
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags)
            run_id = run.info.run_id
        self.run_id = run_id

    def log_config(self, cfg: RunConfig, extra_params: dict[str, Any] | None = None) -> None:
        from mlflow.entities import Param

        params = config_params(cfg)
        params.update({k: str(v)[:MAX_PARAM_LEN] for k, v in (extra_params or {}).items()})
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        self.client.log_text(self.run_id, dump_yaml(cfg), "config/run.yaml")

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metric_values(metrics).items()]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i : i + 500])

    def log_dataset(self, data) -> None:
        """The run's dataset input (a :class:`~mscm.tracking.datasets.DatasetInput`)."""
        from .contract import SPLIT_TAG
        from .datasets import log_dataset

        log_dataset(self.client, self.run_id, data)
        self.client.set_tag(self.run_id, SPLIT_TAG, data.split)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_file: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_file), artifact_path)

    def log_model(self, checkpoint_dir: str | Path) -> str:
        """Log the checkpoint's inference model (mscm.tracking.model_flavor); returns its model URI."""
        from .model_logging import log_embedding_model

        model_uri = log_embedding_model(self.tracking_uri, self.run_id, checkpoint_dir)
        self.client.set_tag(self.run_id, MODEL_URI_TAG, model_uri)
        return model_uri

    def log_best_checkpoint(self, path: str, step: int, *, log_model: bool = True) -> dict[str, str]:
        return log_best_checkpoint(self, path, step, log_model=log_model)

    def end(self, status: str = "FINISHED") -> None:
        terminate(self.client, self.run_id, status)


def log_best_checkpoint(run, path: str, step: int, *, log_model: bool = True) -> dict[str, str]:
    """A run's end record from its best checkpoint, through ``run``'s own methods (a :class:`RunLogger`
    writes at once, a :class:`~mscm.tracking.spooled_run.SpooledRun` queues): the summary metrics
    (:func:`run_summary`), the evaluation files and the inference model, its one copy of the weights in
    MLflow. Returns the tags to set: the checkpoint's path, and a model logging error if there was one."""
    from ..checkpoint import read_metrics
    from ..train.report_keys import CMC_FILE, EVAL_FILE, RANKED_FILE
    from .contract import MODEL_ERROR_TAG

    tags = {CHECKPOINT_TAG: path}
    run.log_metrics(run_summary(read_metrics(path)), step=step)
    for name in (EVAL_FILE, CMC_FILE, RANKED_FILE, RANKED_FILE.replace(".png", ".json")):
        if os.path.exists(os.path.join(path, name)):
            run.log_artifact(os.path.join(path, name), "evaluation")
    if log_model:
        try:
            run.log_model(path)
        except Exception as e:  # a model that cannot be logged must not lose the run's record
            tags[MODEL_ERROR_TAG] = f"{type(e).__name__}: {e}"[:5000]
    return tags
