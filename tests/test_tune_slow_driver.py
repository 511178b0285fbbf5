"""A Tune driver slower than a trial's remaining epochs must not hang the search (issue 23).

The real trainable (mscm.tune.trainable.train_driver: one TorchTrainer per trial) under a driver
callback that stalls on every result but the last for longer than an epoch takes, as an MLflow
callback stalled on a server outage did. Without the fix the Train run ends with its last report still
queued while the driver is busy, and the trial actor deadlocks in ``_TrainSession._report_training_result``
(reproduced here: the same search with a trainable that returns straight after ``fit()`` was still
hung after 150 s).
"""

from __future__ import annotations

import time

import pytest
from train_configs import tiny_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 3
STALL_S = 12.0  # per result but the last; a tiny epoch takes about 2-3 s here


@pytest.mark.timeout(600)  # a hang fails here instead of holding CI (the fixed search takes ~1 min)
def test_a_driver_slower_than_the_trial_does_not_hang_the_search(local_ray, tmp_path):
    import ray.tune
    from ray.tune import Callback

    from mscm.config import to_dict
    from mscm.raycluster import DRIVER_RESOURCE, DRIVER_SLIVER
    from mscm.tune.trainable import train_driver

    class StallOnResults(Callback):
        def __init__(self):
            self.stalled = 0.0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("epoch", EPOCHS) < EPOCHS:
                t0 = time.monotonic()
                time.sleep(STALL_S)
                self.stalled += time.monotonic() - t0

    cfg = tiny_config(tmp_path, schedule__epochs=EPOCHS, eval__trials=1)
    stall = StallOnResults()
    trainable = ray.tune.with_resources(
        ray.tune.with_parameters(train_driver, base=to_dict(cfg)), {DRIVER_RESOURCE: DRIVER_SLIVER}
    )
    tuner = ray.tune.Tuner(
        trainable,
        tune_config=ray.tune.TuneConfig(num_samples=1),
        run_config=ray.tune.RunConfig(
            name="slow-driver", storage_path=str(tmp_path / "tune"), callbacks=[stall], verbose=0
        ),
    )
    results = tuner.fit()
    assert stall.stalled >= (EPOCHS - 1) * STALL_S  # the driver did stall while the trial trained on
    [result] = list(results)
    assert result.error is None, result.error
    reported = result.metrics_dataframe["epoch"].tolist()
    assert reported == list(range(1, EPOCHS + 1)), reported  # every epoch reached Tune, once
