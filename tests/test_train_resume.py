"""A worker process killed mid-run: Ray Train restarts the worker group from the latest checkpoint and
no epoch is lost or repeated."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest
from train_configs import tiny_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _train_workers() -> list[psutil.Process]:
    """This test's Train workers: below this process (its local Ray's raylet is a child), so that a Train
    run of a test running beside it (`make test` runs two processes) is left alone."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            text = " ".join(p.cmdline()) + " " + p.name()
        except psutil.Error:  # ended meanwhile
            continue
        if "RayTrainWorker" in text:
            found.append(p)
    return found


class _Killer(threading.Thread):
    """Kills the training worker once the controller has registered the first checkpoint (its snapshot
    file lists it), i.e. while epoch 2 is running."""

    def __init__(self, run_dir: Path, timeout: float = 600):
        super().__init__(daemon=True)
        self.run_dir, self.timeout = run_dir, timeout
        self.killed: list[int] = []

    def run(self) -> None:
        deadline = time.time() + self.timeout
        while time.time() < deadline and not self.killed:
            snapshot = self.run_dir / "checkpoint_manager_snapshot.json"
            if snapshot.is_file() and "checkpoint_2" in snapshot.read_text(errors="replace"):
                for p in _train_workers():
                    p.kill()
                    self.killed.append(p.pid)
            time.sleep(0.2)


def test_killed_worker_resumes_from_latest_checkpoint(local_ray, tmp_path):
    from mlflow import MlflowClient

    from mscm.train.trainer import run_training

    cfg = tiny_config(tmp_path, schedule__epochs=3, eval__trials=1, train__max_failures=2)
    killer = _Killer(tmp_path / "ray_results" / "resume-run")
    killer.start()
    outcome = run_training(cfg, run_name="resume-run")
    killer.join(timeout=5)

    assert killer.killed, "no training worker was found to kill"
    m = outcome.final_metrics
    assert m["epoch"] == 3
    assert m["train/resumed_from_epoch"] >= 1  # the final worker group started from a checkpoint

    client = MlflowClient(tracking_uri=outcome.tracking_uri, registry_uri=outcome.tracking_uri)
    epochs = [h.step for h in client.get_metric_history(outcome.run_id, "loss/total")]
    assert sorted(epochs) == [1, 2, 3], f"epochs reported: {epochs} (lost or repeated)"
