"""Connect to Ray: the cluster in RAY_ADDRESS (or ``address``), else a small local one."""

from __future__ import annotations

import os

# Custom resource that trial drivers reserve a sliver of instead of a CPU: a driver does no compute,
# and on a 2-core box 1 driver + 2 one-CPU workers must fit (stack.md 2.2, pitfall P2).
DRIVER_RESOURCE = "TRAIN_DRIVER_RESOURCE"
DRIVER_SLIVER = 0.01


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_mb: int = 256,
    driver_slots: int = 4,
) -> dict[str, float]:
    """Start or join Ray; returns the cluster's resources.

    A local Ray gets an explicit small object store (256 MiB is plenty: checkpoints travel by path;
    Ray's default would reserve 30% of RAM in /dev/shm) and ``driver_slots`` units of the driver resource.
    The dashboard stays on: Train V2 needs its State API to clean up ASHA-stopped trials (stack.md P1).
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            ray.init(
                num_cpus=num_cpus,
                object_store_memory=object_store_mb * 1024 * 1024,
                resources={DRIVER_RESOURCE: driver_slots},
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                logging_level="WARNING",
            )
    return ray.cluster_resources()
