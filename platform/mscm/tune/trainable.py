"""The Tune trial: a function trainable that builds and fits one TorchTrainer (docs/stack.md 2.2).

Tune's trial config holds only the sampled dotted overrides (``"loss.qct_margin": 0.42``); the base
run config reaches the trainable through ``tune.with_parameters`` (the object store), so Tune's
tables, ``trials.csv`` and the Optuna study carry the sampled parameters alone. The Train run is
named after the trial id only, so a restarted trial resumes its Train run from the latest
checkpoint. Metrics reach Tune through ``TuneReportCallback`` (rank 0's reports; it adds
``checkpoint_path``).
"""

from __future__ import annotations

from typing import Any

from ..config import RunConfig, apply_overrides, from_dict


def trial_run_config(base: dict[str, Any], sampled: dict[str, Any]) -> RunConfig:
    """The run config of a trial: the base config (a plain dict) with the sampled values applied."""
    cfg = from_dict(RunConfig, base, source="search base config")
    return apply_overrides(cfg, sampled, source="sampled trial parameters")


def _report_callback():
    """TuneReportCallback that keeps a run's failure report (non-finite loss) away from Tune: it has no
    objective metric, which Tune's strict metric check and OptunaSearch would choke on. The driver turns
    that report into the trial's error instead (``raise_if_failed``)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from ..train.report_keys import FAILURE_KEY

    class TrialReportCallback(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if metrics and FAILURE_KEY in metrics[0]:
                return
            super().after_report(run_context, metrics, checkpoint)

    return TrialReportCallback()


def wait_until_reports_delivered(poll_s: float = 0.2) -> None:
    """Return only once Tune's trial actor has passed on every report the Train run sent it.

    Why (issue 23): TuneReportCallback sends each report from the Train controller through a one-slot
    queue actor, which the trial actor's main thread drains only when the Tune driver asks for the next
    result. When the driver is slow (a callback stalled on an MLflow outage), the Train run can end
    with its last report still in that queue. If this function then returned, Tune's function runner
    would put its end-of-training marker into the session's one-slot result queue, and the main thread,
    draining the queue actor first, would block forever putting the last report behind it: the trial
    actor sat in ``_TrainSession._report_training_result`` -> ``Queue.put`` and the search hung.

    Settled means: the queue actor is empty, the result queue is empty, and every report the main
    thread began (``session.iteration``, counted as it starts) has been put on the result queue (its
    ``unfinished_tasks`` counts puts; nothing calls ``task_done``). It is read twice, ``poll_s`` apart,
    to step over the few statements between the queue actor's get and that count.
    """
    import time

    from ray.train._internal.session import get_session

    session = get_session()
    inter_actor = getattr(session, "_inter_actor_queue", None) if session is not None else None
    if inter_actor is None:  # no report was ever sent through it
        return

    def settled() -> bool:
        results = session.result_queue
        return inter_actor.empty() and results.empty() and results.unfinished_tasks == session.iteration

    while True:
        if settled():
            time.sleep(poll_s)
            if settled():
                return
        time.sleep(poll_s)


def train_driver(config: dict[str, Any], base: dict[str, Any], log_level: str = "WARNING") -> None:
    import ray.tune

    from ..train.failures import fit_retrying
    from ..train.report_keys import retry_report
    from ..train.trainer import build_trainer, raise_if_failed
    from .trial_storage import train_run_name

    cfg = trial_run_config(base, config)
    trial_id = ray.tune.get_context().get_trial_id()

    def trainer(attempt: int, reason: str):
        # Same name and storage on every attempt: a retry continues the Train run from its latest checkpoint.
        # Its reports carry the retry count and reason to the trial's MLflow run and the console.
        return build_trainer(
            cfg,
            name=train_run_name(trial_id),
            callbacks=[_report_callback()],
            log_level=log_level,
            report_resumed=True,
            report_extra=retry_report(attempt, reason),
        )

    try:
        result = fit_retrying(trainer, cfg.train.trial_retries, on_retry=lambda attempt, reason: None)
    finally:
        wait_until_reports_delivered()  # also after a failed run: its reports before the failure count
    raise_if_failed(result)
