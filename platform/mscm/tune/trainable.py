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


def train_driver(config: dict[str, Any], base: dict[str, Any], log_level: str = "WARNING") -> None:
    import ray.tune

    from ..train.failures import fit
    from ..train.trainer import build_trainer, raise_if_failed

    cfg = trial_run_config(base, config)
    trial_id = ray.tune.get_context().get_trial_id()
    trainer = build_trainer(cfg, name=f"train-trial_id={trial_id}", callbacks=[_report_callback()], log_level=log_level)
    result = fit(trainer)
    raise_if_failed(result)
