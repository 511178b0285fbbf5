"""Each training run's hardware, per node (issue 24): CPU and memory of every node its workers run on,
and the utilisation and memory of their GPUs, sampled in the workers and reported once per epoch.

Every worker samples its own node (and its own GPU) in a daemon thread every ``interval_s``; at the end
of each epoch the ranks exchange their means (one small ``all_gather_object``, like the node count) and
rank 0's report carries, for each node ``node_<first 8 hex of its Ray node id>``:

  system/<node>/cpu_percent      the node's CPU use, mean over the epoch
  system/<node>/memory_percent   the node's memory in use, mean
  system/<node>/gpu_percent      its workers' GPUs' utilisation, mean (NVML)
  system/<node>/gpu_memory_mb    its workers' GPUs' memory in use, summed, the epoch's peak (NVML)

Where there is no GPU, or no NVML (nvidia-ml-py) to ask, the GPU keys are absent, not zero. Why not
MLflow's own system metrics: its monitor runs in one process and logs to one run with no node label,
and from a worker it would write to MLflow directly, which a search must not wait on (issue 23); these
travel in the epoch reports, through the search's spool.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from typing import Any

log = logging.getLogger(__name__)


def node_label(node_id: str) -> str:
    return f"node_{node_id[:8]}"


def _nvml_handle(device_index: int):
    """NVML's handle of this worker's GPU: ``CUDA_VISIBLE_DEVICES`` (set by Ray) maps torch's index to
    the physical GPU, which NVML counts without it. None without NVML or a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        if device_index < len(visible):
            chosen = visible[device_index]
            if not chosen.isdigit():
                return pynvml.nvmlDeviceGetHandleByUUID(chosen)
            return pynvml.nvmlDeviceGetHandleByIndex(int(chosen))
        return pynvml.nvmlDeviceGetHandleByIndex(device_index)
    except Exception as e:  # no library, no driver, no such device: the GPU series stay absent
        log.debug("no NVML for GPU %s: %s", device_index, e)
        return None


class NodeSampler:
    """Samples this worker's node (and GPU) in a daemon thread; :meth:`take` returns the means since the
    last call (the GPU memory as its peak)."""

    def __init__(self, gpu_index: int | None, interval_s: float = 5.0):
        self.interval_s = interval_s
        self._gpu = _nvml_handle(gpu_index) if gpu_index is not None else None
        self._sums: dict[str, float] = defaultdict(float)
        self._peak_gpu_mb = 0.0
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mscm-node-sampler", daemon=True)

    def start(self) -> NodeSampler:
        import psutil

        psutil.cpu_percent(None)  # the first call only sets the baseline of the next
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        import psutil

        values = {"cpu_percent": psutil.cpu_percent(None), "memory_percent": psutil.virtual_memory().percent}
        gpu_mb = None
        if self._gpu is not None:
            try:
                import pynvml

                values["gpu_percent"] = float(pynvml.nvmlDeviceGetUtilizationRates(self._gpu).gpu)
                gpu_mb = pynvml.nvmlDeviceGetMemoryInfo(self._gpu).used / 2**20
            except Exception as e:  # a GPU that stops answering: skip the sample's GPU part
                log.debug("NVML sample failed: %s", e)
        with self._lock:
            for k, v in values.items():
                self._sums[k] += v
            self._count += 1
            if gpu_mb is not None:
                self._peak_gpu_mb = max(self._peak_gpu_mb, gpu_mb)

    def take(self) -> dict[str, float]:
        """Means since the last call (at least one sample: one is taken now if none was)."""
        if not self._count:
            self.sample()
        with self._lock:
            out = {k: v / self._count for k, v in self._sums.items()}
            if self._gpu is not None and self._peak_gpu_mb:
                out["gpu_memory_mb"] = self._peak_gpu_mb
            self._sums, self._count, self._peak_gpu_mb = defaultdict(float), 0, 0.0
        return out


def by_node(samples: list[tuple[str, dict[str, float]]]) -> dict[str, float]:
    """Per-node report keys from every rank's (node label, sample): CPU, memory and GPU utilisation as
    the mean over the node's workers, GPU memory as their sum (each worker has its own GPU)."""
    from ..tracking.metrics import SYSTEM_PREFIX  # the record's schema is its home

    grouped: dict[str, list[dict[str, float]]] = defaultdict(list)
    for label, sample in samples:
        grouped[label].append(sample)
    out: dict[str, float] = {}
    for label, group in sorted(grouped.items()):
        for key in sorted({k for s in group for k in s}):
            values = [s[key] for s in group if key in s]
            total = sum(values)
            out[f"{SYSTEM_PREFIX}{label}/{key}"] = total if key == "gpu_memory_mb" else total / len(values)
    return out


def gather_node_metrics(sampler: NodeSampler | None, label: str, world: int) -> dict[str, Any]:
    """Every rank calls this once per epoch (a collective when ``world`` > 1); rank 0 uses the result."""
    if sampler is None:
        return {}
    mine = (label, sampler.take())
    if world == 1:
        return by_node([mine])
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    return by_node(gathered)


def cluster_totals(reports: list[dict[str, Any]]) -> dict[str, float]:
    """The cluster's totals from the latest report of each running trial (a node shared by two trials
    counts once): ``cluster/nodes``, the mean CPU, memory and GPU use over the nodes (GPU over the nodes
    that have one; absent if none does) and the GPU memory in use, summed."""
    from ..tracking.metrics import SYSTEM_PREFIX

    nodes: dict[str, dict[str, float]] = defaultdict(dict)
    for report in reports:
        for key, value in report.items():
            if key.startswith(SYSTEM_PREFIX):
                label, name = key[len(SYSTEM_PREFIX) :].split("/", 1)
                nodes[label][name] = value
    if not nodes:
        return {}
    out = {"cluster/nodes": float(len(nodes))}
    for name in ("cpu_percent", "memory_percent", "gpu_percent"):
        values = [n[name] for n in nodes.values() if name in n]
        if values:
            out[f"cluster/{name}"] = sum(values) / len(values)
    gpu_mb = [n["gpu_memory_mb"] for n in nodes.values() if "gpu_memory_mb" in n]
    if gpu_mb:
        out["cluster/gpu_memory_mb"] = sum(gpu_mb)
    return out
