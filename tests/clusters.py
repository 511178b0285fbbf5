"""Simulated multi-node Ray clusters for the tests (ray.cluster_utils): a head like cluster.yaml's, with
the trial-driver resource and no CPU, and one-CPU worker nodes."""

from __future__ import annotations

OBJECT_STORE = 128 * 1024**2


def add_worker(cluster):
    """One more one-CPU worker node; returns Ray's node (its ``node_id``)."""
    return cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)


def driver_head_cluster(workers: int):
    """A started cluster of a CPU-less head and ``workers`` worker nodes, once they have all joined. The
    test's own Ray (if any) is shut down first: a process joins one cluster at a time."""
    import ray
    from ray.cluster_utils import Cluster

    from mscm.raycluster import DRIVER_RESOURCE

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "resources": {DRIVER_RESOURCE: 4}, "object_store_memory": OBJECT_STORE},
    )
    for _ in range(workers):
        add_worker(cluster)
    cluster.wait_for_nodes()
    return cluster
