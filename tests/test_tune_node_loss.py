"""Spot nodes lost more often than Ray Train retries (issue 24): the trial is started again from its
latest checkpoint, within the same Tune trial, MLflow run and Optuna trial, and finishes with one step per
epoch. A trial that fails on its own (a non-finite loss) beside it is not retried. The trial's run shows
the hardware of each node it ran on, labelled by node, and its data-loader wait; the search's parent run
shows the cluster's totals.

A simulated cluster (ray.cluster_utils.Cluster): a head with the trial-driver resource and no CPU, and one
one-CPU worker node at a time. The node under the running trial is removed (its raylet and workers
killed, as a spot reclaim without notice) after epochs 1 and 2, and a fresh node joins each time.
``train.max_failures=1`` lets Ray Train absorb the first loss; the second is past it. The search runs as
`mscm tune --address` in a child process, as a user runs it; the test's main thread reclaims the nodes
(Ray starts a node's processes only from a main thread)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from clusters import add_worker, driver_head_cluster
from processes import child_env
from train_configs import OVERFLOW, SLOWER, tiny_space_overrides, tune_command

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def spot_cluster(isolated_project):
    import ray

    cluster = driver_head_cluster(workers=1)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _space(path: Path) -> str:
    space = {
        "base": "smoke",
        "overrides": tiny_space_overrides(
            **SLOWER,
            **{"train.max_failures": 1, "train.trial_retries": 2},
            **{"tracking.system_metrics": True, "tracking.system_metrics_interval_s": 0.5},
        ),
        # The random sampler with this seed draws the overflowing weight first, then 1.0 (asserted below).
        "parameters": {"loss.ce_weight": {"type": "categorical", "choices": [1.0, OVERFLOW]}},
        "objective": {"metric": "mAP", "direction": "maximize"},
        "budget": {"trials": 2, "epochs": 3, "scheduler": "none", "max_concurrent_trials": 1},
        "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0},
        "sampler": {"name": "random", "seed": 0},
    }
    path.write_text(yaml.safe_dump(space))
    return str(path)


class _NodeReclaimer:
    """Removes the worker node under the first Train run that checkpoints an epoch (the failing trial
    never does), once its checkpoint of epoch 1, then of epoch 2, is written; a fresh node joins each time.
    Called from the test's main thread: Ray starts a node's processes only from a main thread."""

    def __init__(self, cluster, storage: Path, epochs: tuple[int, ...] = (1, 2)):
        self.cluster, self.storage, self.epochs = cluster, storage, list(epochs)
        self.reclaimed: list[int] = []
        self.run_dir: Path | None = None
        self.node_ids = {node.node_id for node in cluster.worker_nodes}  # every worker node it ever had

    @staticmethod
    def _latest_epoch(run_dir: Path) -> int:
        found = [0]
        for metrics in run_dir.glob("checkpoint_*/metrics.json"):
            try:
                found.append(int(json.loads(metrics.read_text())["epoch"]))
            except (OSError, ValueError, KeyError):  # being written, or already replaced
                continue
        return max(found)

    def step(self) -> None:
        if not self.epochs:
            return
        if self.run_dir is None:
            trained = [d for d in self.storage.glob("train-trial_id=*") if self._latest_epoch(d) >= 1]
            self.run_dir = trained[0] if trained else None
        if self.run_dir is not None and self._latest_epoch(self.run_dir) >= self.epochs[0]:
            for node in list(self.cluster.worker_nodes):
                self.cluster.remove_node(node, allow_graceful=False)
            fresh = add_worker(self.cluster)
            self.node_ids.add(fresh.node_id)
            self.reclaimed.append(self.epochs.pop(0))


def _search(cluster, tmp_path: Path, reclaimer: _NodeReclaimer) -> tuple[int, str]:
    """`mscm tune` on the cluster, as a user runs it, with nodes reclaimed under it; (exit code, console)."""
    args = tune_command(_space(tmp_path / "space.yaml"), "spot", "--address", cluster.address, "--no-baseline")
    args += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage-path", str(tmp_path / "ray_results")]
    args += ["--optuna-url", f"sqlite:///{tmp_path / 'optuna.db'}"]
    log = tmp_path / "search.log"
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=child_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 600
            while proc.poll() is None and time.time() < deadline:
                reclaimer.step()
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, log.read_text()


def test_a_trial_whose_nodes_are_lost_past_max_failures_is_retried_and_finishes(spot_cluster, tmp_path):
    import optuna
    from mlflow import MlflowClient

    from mscm.tracking.contract import RETRIES_TAG, RETRY_REASON_TAG, STATUS_TAG

    reclaimer = _NodeReclaimer(spot_cluster, tmp_path / "ray_results")
    code, console = _search(spot_cluster, tmp_path, reclaimer)
    assert reclaimer.reclaimed == [1, 2], (reclaimer.reclaimed, console[-3000:])
    assert code == 0, console[-3000:]  # one trial failed on its own: the search still ends well

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mscm").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`mscm.search` = 'spot'")
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_weight = {float(r.data.params["loss.ce_weight"]): r for r in runs}
    assert sorted(by_weight) == [1.0, OVERFLOW], "the sampler did not draw both weights"
    good, bad = by_weight[1.0], by_weight[OVERFLOW]

    # The lost trial: one Tune trial, one MLflow run, every epoch once, retried once and saying why.
    assert good.info.status == "FINISHED" and good.data.tags[STATUS_TAG] == "completed", good.data.tags
    for key in ("loss/total", "eval/mAP"):
        steps = [m.step for m in client.get_metric_history(good.info.run_id, key)]
        assert sorted(steps) == [1, 2, 3], (key, steps)
    assert good.data.tags.get(RETRIES_TAG) == "1", good.data.tags
    assert "lost" in good.data.tags.get(RETRY_REASON_TAG, ""), good.data.tags
    label = good.info.run_name.split()[0]
    assert f"{label} retried (1 so far): worker rank 0 lost" in console, console[-3000:]
    assert f"{label} completed" in console

    _assert_hardware(client, good, parent.info.run_id, reclaimer.node_ids)

    # The trial that fails the same way every time: failed once, never retried.
    assert bad.info.status == "FAILED" and bad.data.tags[STATUS_TAG] == "failed", bad.data.tags
    assert "non-finite loss" in bad.data.tags.get("failure", ""), bad.data.tags
    assert RETRIES_TAG not in bad.data.tags
    assert f"{bad.info.run_name.split()[0]} retried" not in console

    study = optuna.load_study(study_name="spot", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = {t.params["loss.ce_weight"]: t.state for t in study.trials}
    assert states == {1.0: optuna.trial.TrialState.COMPLETE, OVERFLOW: optuna.trial.TrialState.FAIL}


def _assert_hardware(client, run, parent_run_id: str, worker_node_ids: set[str]) -> None:
    """Each epoch ran on another node: the run holds each node's CPU and memory under its own label, the
    epochs' union is every epoch, no GPU series on CPU nodes, and the data-loader wait per epoch."""
    from mscm.train.node_metrics import node_label

    labels = {node_label(i) for i in worker_node_ids}
    system = [k for k in run.data.metrics if k.startswith("system/")]
    nodes = {k.split("/")[1] for k in system}
    assert nodes and nodes <= labels, (nodes, labels)  # worker nodes only, by their own label
    assert not any("gpu" in k for k in system), system  # absent, not zero, without a GPU
    steps = []
    for node in nodes:
        for name in ("cpu_percent", "memory_percent"):
            history = client.get_metric_history(run.info.run_id, f"system/{node}/{name}")
            assert all(0 <= h.value <= 100 for h in history), (node, name, history)
        steps += [h.step for h in client.get_metric_history(run.info.run_id, f"system/{node}/cpu_percent")]
    assert sorted(steps) == [1, 2, 3], steps  # one node's figures per epoch, each epoch once
    assert len(nodes) >= 2, nodes  # the epochs ran on different nodes, told apart
    waits = client.get_metric_history(run.info.run_id, "perf/data_wait_ms")
    assert sorted(h.step for h in waits) == [1, 2, 3] and all(h.value >= 0 for h in waits), waits
    totals = client.get_run(parent_run_id).data.metrics
    assert totals.get("cluster/nodes") == 1 and 0 <= totals["cluster/cpu_percent"] <= 100, totals
