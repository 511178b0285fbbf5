"""Ray Train callbacks of a training run (they run in the TrainController process)."""

from __future__ import annotations

from typing import Any

import ray.train


class MlflowEpochCallback(ray.train.UserCallback):
    """A Ray Train callback (runs in the TrainController) that logs each report to one MLflow run."""

    def __init__(self, tracking_uri: str, run_id: str, experiment: str):
        self.tracking_uri, self.run_id, self.experiment = tracking_uri, run_id, experiment
        self._logger = None

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        from ..tracking.metrics import epoch_metrics
        from ..tracking.mlflow_run import RunLogger

        if self._logger is None:
            self._logger = RunLogger(self.tracking_uri, self.experiment, run_name="", run_id=self.run_id)
        rank0 = metrics[0]
        self._logger.log_metrics(epoch_metrics(rank0), step=int(rank0.get("epoch", 0)))
