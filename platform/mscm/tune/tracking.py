"""MLflow logging of a search from the Tune driver: one nested run per trial under the search's run.

All writes come from the Tune driver process (one writer: safe with SQLite), also for trials that
ASHA stopped or that failed, whose own processes never get to close their runs (docs/stack.md 2.7).
The callbacks never wait for the store: each write is appended to the search's spool and sent by a
background writer thread (:mod:`mscm.tracking.spooled_run`), so an MLflow server that is slow or away
does not hold up Tune's loop (issue 23). A resumed search finds each trial's run again by its
``ray_trial_id`` tag instead of creating a second.
What each run holds follows :mod:`mscm.tracking.metrics`: per-epoch series while the trial runs, and
at its end the best checkpoint's summary, evaluation files and inference model (its only weights in
MLflow; the optimiser state stays in Ray's checkpoints).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ray.tune.logger import LoggerCallback

from ..tracking.contract import RETRIES_TAG, RETRY_REASON_TAG, SAMPLED_TAG, STATUS_TAG, TRIAL_TAG, trial_run_name
from ..tracking.metrics import SYSTEM_PREFIX, epoch_metrics
from ..train.report_keys import FAILURE_KEY, SCORE_KEY, new_retry
from .trainable import trial_run_config
from .trial_storage import train_run_dir

PARENT_KEY = "search-parent"  # the spool's key of the search's parent run (the cluster's totals)


def config_key(config: dict[str, Any]) -> str:
    """A trial config as one comparable string (its sampled dotted overrides)."""
    return json.dumps(config, sort_keys=True, default=str)


class MlflowTrialLogger(LoggerCallback):
    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        parent_run_id: str,
        max_epochs: int,
        *,
        base: dict[str, Any],
        dataset=None,
        log_models: bool = True,
        order: tuple[str, ...] = (),
        tags_for: dict[str, dict[str, str]] | None = None,
        spool_folder: str,
    ):
        self.tracking_uri, self.experiment, self.base = tracking_uri, experiment, base
        self.parent_run_id, self.max_epochs = parent_run_id, max_epochs
        self.dataset = dataset  # a mscm.tracking.datasets.DatasetInput, logged to every trial run
        self.log_models = log_models
        self.order = tuple(order)  # the space's parameter order: run names read as the YAML file does
        self.tags_for = dict(tags_for or {})  # config_key(trial config) -> extra tags of its run (mscm confirm)
        self.spool_folder = spool_folder
        self._runs: dict[str, Any] = {}  # trial_id -> SpooledRun
        self._best: dict[str, tuple[float, str | None]] = {}  # trial_id -> (score, checkpoint_path)
        self._last_epoch: dict[str, int] = {}
        self._failure: dict[str, str] = {}
        self._index: dict[str, int] = {}  # trial_id -> place in the search's order (run names)
        self._retries: dict[str, int] = {}  # trial_id -> retries already tagged

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state: the open runs (which hold the writer
        # thread) are not part of it; a resumed search opens them again (idempotently) from the spool.
        from ..redact import redact

        state = dict(self.__dict__)
        state["_runs"] = {}
        state["tracking_uri"] = redact(self.tracking_uri)  # the search registers the real one (store_of)
        return state

    def writer(self):
        from ..tracking.spool import Spool
        from ..tracking.spooled_run import store_of, writer_for

        spool = Spool(self.spool_folder)
        return writer_for(spool, store_of(spool, self.tracking_uri))

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._index[trial.trial_id] = trials.index(trial)
        super().on_trial_start(iteration, trials, trial, **info)

    def _logger(self, trial):
        from ..tracking.spooled_run import SpooledRun

        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        rank = {key: i for i, key in enumerate(self.order)}
        sampled = {k: trial.config[k] for k in sorted(trial.config, key=lambda k: rank.get(k, len(rank)))}
        name = trial_run_name(self._index.get(trial.trial_id, len(self._index)), sampled)
        writer = self.writer()
        logger = SpooledRun(
            writer.spool,
            writer,
            trial.trial_id,
            experiment=self.experiment,
            run_name=name,
            parent_run_id=self.parent_run_id,
            tags={
                TRIAL_TAG: trial.trial_id,
                "trial_name": str(trial),
                SAMPLED_TAG: ",".join(trial.config),
                **self.tags_for.get(config_key(trial.config), {}),
            },
        )
        self._runs[trial.trial_id] = logger
        # the sampled values are params under their plain dotted keys, with the rest (sent once: the
        # writer skips what the run already holds, as on a resumed search)
        logger.log_config(trial_run_config(self.base, trial.config))
        if self.dataset is not None:
            logger.log_dataset(self.dataset)
        return logger

    def log_trial_start(self, trial) -> None:
        self._logger(trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        logger = self._logger(trial)
        epoch = int(result.get("epoch", result.get("training_iteration", iteration)))
        self._last_epoch[trial.trial_id] = epoch
        if result.get(FAILURE_KEY):
            self._failure[trial.trial_id] = str(result[FAILURE_KEY])
        retry = new_retry(self.__dict__.setdefault("_retries", {}), trial.trial_id, result)  # older pickles lack it
        if retry:
            logger.set_tags({RETRIES_TAG: retry[0], RETRY_REASON_TAG: retry[1]})
        logger.log_epoch_metrics(epoch_metrics(result), epoch)
        self._log_cluster(trial.trial_id, result)
        score = result.get(SCORE_KEY, -math.inf)
        best = self._best.get(trial.trial_id, (-math.inf, None))
        if score is not None and score > best[0]:
            self._best[trial.trial_id] = (float(score), result.get("checkpoint_path"))

    def _log_cluster(self, trial_id: str, result: dict) -> None:
        """The cluster's totals on the parent run, from the running trials' latest node metrics."""
        from ..tracking.spooled_run import SpooledRun
        from ..train.node_metrics import cluster_totals

        nodes = self.__dict__.setdefault("_nodes", {})  # older pickles lack it
        system = {k: v for k, v in result.items() if k.startswith(SYSTEM_PREFIX)}
        if not system:
            return
        nodes[trial_id] = system
        writer = self.writer()
        if self._runs.get(PARENT_KEY) is None:
            self._runs[PARENT_KEY] = SpooledRun.attached(writer.spool, writer, PARENT_KEY, self.parent_run_id)
        self._cluster_step = self.__dict__.get("_cluster_step", 0) + 1
        self._runs[PARENT_KEY].log_metrics(cluster_totals(list(nodes.values())), step=self._cluster_step)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        logger = self._logger(trial)
        failed = failed or trial.trial_id in self._failure
        epochs = self._last_epoch.get(trial.trial_id, 0)
        status = "failed" if failed else ("completed" if epochs >= self.max_epochs else "stopped_early")
        tags: dict[str, Any] = {STATUS_TAG: status, "epochs_run": epochs}
        if trial.trial_id in self._failure:
            tags["failure"] = self._failure[trial.trial_id][:5000]
        elif failed and trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file) as f:
                tags["failure"] = f.read()[-5000:]
        _, path = self._best.get(trial.trial_id, (-math.inf, None))
        if path and os.path.isdir(path) and not failed:
            tags.update(logger.log_best_checkpoint(path, epochs, log_model=self.log_models))
        logger.set_tags(tags)
        logger.end("FAILED" if failed else "FINISHED")
        storage = (self.base.get("train") or {}).get("storage_path")
        if storage:  # nothing resumes an ended trial: its checkpoints shrink once MLflow has its record
            logger.prune_checkpoints(train_run_dir(storage, trial.trial_id), path)
        self._runs.pop(trial.trial_id, None)
        self.__dict__.get("_nodes", {}).pop(trial.trial_id, None)  # its nodes leave the cluster's totals
