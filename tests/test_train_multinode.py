"""DDP across two Ray nodes (a simulated cluster: ray.cluster_utils.Cluster, one CPU worker per node),
with Ray storage on a path both nodes see."""

from __future__ import annotations

import pytest
from clusters import driver_head_cluster
from train_configs import tiny_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def two_node_cluster(isolated_project):
    import ray

    # The head holds no CPUs (only the trial-driver resource), like cluster.yaml's head: the two
    # one-CPU workers can only be placed one per worker node.
    cluster = driver_head_cluster(workers=2)
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ddp_across_two_nodes(two_node_cluster, tmp_path):
    import ray

    from mscm.train.trainer import build_trainer, raise_if_failed

    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    cfg = tiny_config(tmp_path, train__num_workers=2, schedule__epochs=2, eval__trials=1)
    result = build_trainer(cfg, name="two-nodes").fit()
    raise_if_failed(result)
    m = result.metrics
    assert m["dist/world_size"] == 2
    assert m["dist/num_nodes"] == 2  # the all-reduced node ranks of the worker group
    assert m["epoch"] == 2 and m["mAP"] > 0
