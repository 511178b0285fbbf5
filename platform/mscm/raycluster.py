"""Connect to Ray: the cluster in RAY_ADDRESS (or ``address``), else a small local one."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .environ import temporary_env

# Custom resource that trial drivers reserve a sliver of instead of a CPU: a driver does no compute,
# and on a 2-core box 1 driver + 2 one-CPU workers must fit (docs/stack.md 2.2, pitfall P2).
DRIVER_RESOURCE = "TRAIN_DRIVER_RESOURCE"
DRIVER_SLIVER = 0.01

# Ray Train V2's controller polls its workers every 2 s by default, and a Train run's start, each report
# and its end each wait for a poll. On one machine a poll is a local call, so a short interval costs
# nothing and saves about 4 s per Train run (bench/trial_overhead.py, docs/benchmarks.md). A cluster keeps
# Ray's default: there the controller's calls cross the network.
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"  # the port a local head's GCS listens on (ray._private.node)
LOCAL_TRAIN_POLL_S = "0.25"

# Ray Train V2 starts a PreemptionWatcher actor with every Train run: it polls the GCS for nodes that a
# cloud provider announced it will take (a drain with a preemption deadline). A Ray started here is one
# machine with no autoscaler: nothing drains its node, and if the machine goes, the search goes with it.
# The actor only costs a worker process (about 2 CPU-s per Train run: docs/benchmarks.md). A cluster, or
# a user who sets the variable, keeps Ray's default.
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"  # ray.train.v2._internal.constants


def use_local_train_poll(environ: dict[str, str] = os.environ) -> None:
    """Before a local Ray starts (its workers inherit the environment): the short poll, unless set."""
    environ.setdefault(TRAIN_POLL_ENV, LOCAL_TRAIN_POLL_S)


def local_preemption_watcher(environ: dict[str, str] = os.environ) -> str | None:
    """The watcher's setting for a local Ray: off ("0"), or None to leave a user's own setting as it is."""
    return None if environ.get(PREEMPTION_WATCHER_ENV) else "0"


def _answers(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something listens at ``host:port``."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _local_cluster_running() -> bool:
    """Whether `ray start` left the address of a live cluster on this node (Ray's own address file)."""
    try:
        # Only the file `ray start` writes: scanning for GCS processes would also find other local Rays
        # (another user's ray.init()) and join them.
        from ray._private.services import find_bootstrap_address

        address = find_bootstrap_address(None)
    except Exception:  # an unreadable address file: start a local Ray
        return False
    # A file whose cluster was killed (not `ray stop`ped) stays behind; joining it would wait for its GCS
    # forever (docs/stack.md P9).
    return bool(address) and _answers(address)


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_mb: int = 256,
    driver_slots: int = 4,
    log_to_driver: bool = True,
) -> dict[str, float]:
    """Start or join Ray; returns the cluster's resources. ``log_to_driver=False`` keeps the output of
    Ray's workers and actors in Ray's log folder (:func:`ray_logs_dir`) instead of this console.

    A local Ray gets an explicit small object store (256 MiB is plenty: checkpoints travel by path;
    Ray's default would reserve 30% of RAM in /dev/shm) and ``driver_slots`` units of the driver resource.
    The dashboard stays on: Train V2 needs its State API to clean up ASHA-stopped trials (docs/stack.md P1).
    """
    import ray

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if not address and _local_cluster_running():
            # A cluster started with `ray start` on this node (a cluster-launcher head): join it. Passing
            # resources or an object-store size while joining is an error in ray.init.
            address = "auto"
        if address:
            # A GCS address named here is passed on to the workers; RAY_ADDRESS (set for them already), "auto"
            # (one `ray start` cluster) and a Ray Client address (not one the State API takes) are not.
            named = address != "auto" and not address.startswith("ray://") and not os.environ.get("RAY_ADDRESS")
            env = workers_know_their_cluster(address) if named else {}
            ray.init(address=address, log_to_driver=log_to_driver, runtime_env=env or None)
        else:  # a fresh local Ray
            _start_local_ray(num_cpus, object_store_mb, driver_slots, log_to_driver)
    return ray.cluster_resources()


def workers_know_their_cluster(address: str) -> dict[str, dict[str, str]]:
    """The job's runtime env that tells Ray's own actors which cluster is theirs.

    Why: Ray Train's PlacementGroupCleaner asks the State API with no address. With two Ray instances on
    one machine (two searches, another user's ray.init, the test suite on two processes) that call fails
    ("Found multiple active Ray instances"), the cleaner stops, and the placement group of every trial
    that ASHA stops stays reserved: the next trial waits for its CPUs forever."""
    return {"env_vars": {"RAY_ADDRESS": address}}


def _unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _start_local_ray(num_cpus: int | None, object_store_mb: int, driver_slots: int, log_to_driver: bool) -> None:
    import ray
    from ray.util import get_node_ip_address

    use_local_train_poll()
    port = int(os.environ.get(GCS_PORT_ENV) or 0) or _unused_port()  # chosen here: the workers are told it
    # The workers learn their cluster from the environment they inherit from the raylet, which starts here:
    # set for the start only (a job runtime_env would do the same, but every worker would then start through
    # Ray's setup_worker.py, about twice the CPU per actor: docs/benchmarks.md). address="local" makes
    # ray.init start a new Ray rather than join the RAY_ADDRESS it sees.
    address = f"{get_node_ip_address()}:{port}"
    watcher = local_preemption_watcher()  # inherited by every trial, as above
    with (
        temporary_env(GCS_PORT_ENV, str(port)),
        temporary_env("RAY_ADDRESS", address),
        temporary_env(PREEMPTION_WATCHER_ENV, watcher),
    ):
        ray.init(
            address="local",
            num_cpus=num_cpus,
            object_store_memory=object_store_mb * 1024 * 1024,
            resources={DRIVER_RESOURCE: driver_slots},
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            logging_level="WARNING",
            log_to_driver=log_to_driver,
        )


def ray_logs_dir() -> str:
    """The folder of this node's Ray logs (workers' and actors' stdout and stderr) for the running Ray."""
    import ray

    ctx = ray.get_runtime_context()
    return os.path.join(ctx.get_temp_dir(), ctx.get_session_name(), "logs")


# Where the cluster launcher leaves the cluster config on the head node (`ray up` writes it there).
AUTOSCALER_CONFIG = Path.home() / "ray_bootstrap_config.yaml"


def autoscaling_capacity(config_path: str | Path = AUTOSCALER_CONFIG) -> dict[str, float] | None:
    """The resources an autoscaling cluster can grow to (each node type's resources x its max_workers,
    the head once), read from the launcher's config; None when this is not a launcher head.

    Sizing trial concurrency from the resources present would never ask the autoscaler for more nodes.
    """
    path = Path(config_path)
    if not path.is_file():
        return None
    with open(path) as f:
        conf = yaml.safe_load(f) or {}
    types = conf.get("available_node_types") or {}
    head = conf.get("head_node_type")
    total: dict[str, float] = {}
    for name, node in types.items():
        count = 1 if name == head else int(node.get("max_workers", 0))
        for key, value in (node.get("resources") or {}).items():
            total[key] = total.get(key, 0.0) + float(value) * count
    return total or None
