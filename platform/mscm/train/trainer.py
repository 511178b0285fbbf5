"""Build the Ray Train ``TorchTrainer`` of a run, and run one training logged to MLflow (`mscm train`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import RunConfig, to_dict
from ..paths import ray_results_dir
from .report_keys import EVAL_FILE, FAILURE_KEY, SCORE_KEY, retry_report


def storage_path_of(cfg: RunConfig) -> str:
    """The run's Ray results folder (created by the preflight, not here)."""
    return cfg.train.storage_path or str(ray_results_dir())


def build_trainer(
    cfg: RunConfig,
    *,
    name: str,
    callbacks: Sequence[Any] = (),
    log_level: str = "INFO",
    report_resumed: bool = False,
    report_extra: dict[str, Any] | None = None,
):
    """A TorchTrainer for ``cfg``: DDP over ``train.num_workers`` workers, nccl on GPUs, gloo on CPUs.

    Checkpoints: the best ``checkpoints_to_keep`` by the selection metric plus the latest (Ray always
    keeps the latest, which is what a restarted worker group resumes from). ``log_level`` is Ray Train's
    console level; a search runs its trials at WARNING, where every report and checkpoint is no longer echoed.
    ``report_resumed``: a resumed run reports its checkpoint's epoch again first (search trials:
    :func:`mscm.train.worker.report_resumed_epoch`). ``report_extra``: added to every report (a trial's
    retry count and reason).
    """
    import ray.train
    from ray.train.torch import TorchConfig

    from .failures import MscmTorchTrainer
    from .worker import train_loop_per_worker

    resources = {"CPU": cfg.train.cpus_per_worker}
    if cfg.train.use_gpu:
        resources["GPU"] = cfg.train.gpus_per_worker
    return MscmTorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run": to_dict(cfg), "report_resumed": report_resumed, "report_extra": report_extra or {}},
        torch_config=TorchConfig(backend="nccl" if cfg.train.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.train.num_workers,
            use_gpu=cfg.train.use_gpu,
            resources_per_worker=resources,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path_of(cfg),
            callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=cfg.train.checkpoints_to_keep,
                checkpoint_score_attribute=SCORE_KEY,
                checkpoint_score_order="max",
            ),
            # Lost workers and nodes are retried; an MscmError is not (DeterministicErrorPolicy).
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
            logging_config=ray.train.LoggingConfig(log_level=log_level),
        ),
    )


def best_checkpoint_path(result) -> str | None:
    """Path of the kept checkpoint with the highest selection score (not simply the last one)."""
    best, best_score = None, -math.inf
    for checkpoint, metrics in result.best_checkpoints or []:
        score = metrics.get(SCORE_KEY, -math.inf)
        if best is None or score > best_score:
            best, best_score = checkpoint, score
    return best.path if best is not None else None


def raise_if_failed(result) -> None:
    """Turn a run that ended on a reported failure (non-finite loss) into an exception."""
    failure = (result.metrics or {}).get(FAILURE_KEY)
    if failure:
        from .engine import NonFiniteLossError

        raise NonFiniteLossError(failure)


@dataclass
class TrainOutcome:
    run_id: str
    tracking_uri: str
    best_checkpoint: str | None
    final_metrics: dict[str, Any]
    storage_path: str


def run_training(cfg: RunConfig, *, run_name: str | None = None, ray_address: str | None = None) -> TrainOutcome:
    """Train once on Ray Train and log it to MLflow: params, config, dataset, per-epoch and system
    metrics, and at the end the best checkpoint's summary, CMC plot, evaluation JSON and inference
    model (:mod:`mscm.tracking.metrics`)."""
    from ..preflight import preflight_run
    from ..raycluster import init_ray
    from ..tracking.contract import DATASET_TAG, KIND_TAG, KIND_TRAIN
    from ..tracking.datasets import describe_dataset
    from ..tracking.mlflow_run import RunLogger, resolve_tracking_uri
    from ..tracking.ui import ui_command

    report = preflight_run(
        cfg, storage_path=storage_path_of(cfg), tracking_uri=resolve_tracking_uri(cfg.tracking.tracking_uri)
    )
    from .callbacks import MlflowEpochCallback
    from .failures import fit_retrying

    init_ray(ray_address)
    name = run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    logger = RunLogger(
        cfg.tracking.tracking_uri,
        cfg.tracking.experiment,
        run_name=name,
        tags={KIND_TAG: KIND_TRAIN, DATASET_TAG: cfg.data.dataset},
        artifact_location=cfg.tracking.artifact_location,
    )
    print(f"MLflow run {logger.run_id} in {logger.tracking_uri}\n  UI: {ui_command(logger.tracking_uri)}")
    logger.log_config(cfg)
    logger.log_dataset(describe_dataset(report.dataset.dataset, cfg.data.val_identities))
    monitor = _start_system_metrics(logger) if cfg.tracking.system_metrics else None
    status = "FAILED"
    try:
        callback = MlflowEpochCallback(logger.tracking_uri, logger.run_id, cfg.tracking.experiment)

        def trainer(attempt: int, reason: str):  # same name and storage: a retry continues the Train run
            return build_trainer(cfg, name=name, callbacks=[callback], report_extra=retry_report(attempt, reason))

        def announce(attempt: int, reason: str) -> None:
            print(
                f"{name}: {reason}; retry {attempt} of {cfg.train.trial_retries} from the latest checkpoint", flush=True
            )

        result = fit_retrying(trainer, cfg.train.trial_retries, on_retry=announce)
        raise_if_failed(result)
        best = best_checkpoint_path(result)
        final = dict(result.metrics or {})
        if best:
            logger.set_tags(logger.log_best_checkpoint(best, int(final.get("epoch", 0))))
        last = result.checkpoint.path if result.checkpoint is not None else None
        if last and os.path.exists(os.path.join(last, EVAL_FILE)):
            # The last epoch ran the full protocol (all trials): that is the run's final evaluation.
            logger.log_artifact(os.path.join(last, EVAL_FILE), "evaluation/final")
        status = "FINISHED"
        return TrainOutcome(logger.run_id, logger.tracking_uri, best, final, storage_path_of(cfg))
    finally:
        if monitor is not None:
            monitor.finish()
        logger.end(status)


def _start_system_metrics(logger):
    """CPU/memory/disk/network (and GPU with nvidia-ml-py) of the driver's node, into the run."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError:  # pragma: no cover - mlflow without the monitor
        return None
    monitor = SystemMetricsMonitor(
        logger.run_id,
        sampling_interval=5,
        samples_before_logging=1,
        resume_logging=False,
        tracking_uri=logger.tracking_uri,
    )
    monitor.start()
    return monitor
