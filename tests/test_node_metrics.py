"""Per-node hardware figures (mscm.train.node_metrics, issue 24): a real sampler on this machine, the
per-node merge of the ranks' samples, and the cluster's totals from the running trials' reports."""

from __future__ import annotations

import time

import pytest


def test_the_sampler_reads_this_node_and_leaves_gpu_series_absent_without_a_gpu():
    import psutil

    from mscm.train.node_metrics import NodeSampler

    sampler = NodeSampler(gpu_index=0, interval_s=0.05).start()  # asks NVML for GPU 0: none here
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            sum(i * i for i in range(10_000))  # some CPU use to sample
        first = sampler.take()
        second = sampler.take()  # a fresh window: at least one sample of its own
    finally:
        sampler.stop()
    assert set(first) == set(second) == {"cpu_percent", "memory_percent"}  # absent, not zero
    assert 0 < first["cpu_percent"] <= 100
    assert first["memory_percent"] == pytest.approx(psutil.virtual_memory().percent, abs=10)


def test_ranks_merge_by_node_gpu_memory_summed():
    from mscm.train.node_metrics import by_node

    samples = [
        ("node_a", {"cpu_percent": 50.0, "memory_percent": 40.0, "gpu_percent": 90.0, "gpu_memory_mb": 1000.0}),
        ("node_a", {"cpu_percent": 52.0, "memory_percent": 40.0, "gpu_percent": 70.0, "gpu_memory_mb": 3000.0}),
        ("node_b", {"cpu_percent": 10.0, "memory_percent": 20.0}),
    ]
    assert by_node(samples) == {
        "system/node_a/cpu_percent": 51.0,
        "system/node_a/gpu_memory_mb": 4000.0,  # two workers, two GPUs
        "system/node_a/gpu_percent": 80.0,
        "system/node_a/memory_percent": 40.0,
        "system/node_b/cpu_percent": 10.0,
        "system/node_b/memory_percent": 20.0,
    }


def test_cluster_totals_count_a_shared_node_once():
    from mscm.train.node_metrics import cluster_totals

    reports = [
        {"system/node_a/cpu_percent": 80.0, "system/node_a/gpu_percent": 60.0, "system/node_a/gpu_memory_mb": 500.0},
        {"system/node_a/cpu_percent": 90.0, "system/node_b/cpu_percent": 30.0, "loss/total": 1.0},
    ]
    totals = cluster_totals(reports)
    assert totals == {
        "cluster/nodes": 2.0,
        "cluster/cpu_percent": 60.0,  # node_a's latest (90) and node_b's 30
        "cluster/gpu_percent": 60.0,  # over the nodes with a GPU
        "cluster/gpu_memory_mb": 500.0,
    }
    assert cluster_totals([{"loss/total": 1.0}]) == {}
