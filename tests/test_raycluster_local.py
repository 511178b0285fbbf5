"""The local Ray that mscm starts tells its own actors which cluster is theirs. Ray Train's
PlacementGroupCleaner asks the State API with no address; with a second Ray instance on the same machine
that call failed ("Found multiple active Ray instances"), the cleaner stopped, and every trial ASHA
stopped kept its placement group: the next trial waited for CPUs forever (seen with the test suite on
two processes, each with its own Ray)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ray


def _state_api_from_an_actor() -> str:
    """What the cleaner does, from an actor of the shared Ray: ask the State API for this actor."""
    import ray

    @ray.remote(num_cpus=0, resources={"TRAIN_DRIVER_RESOURCE": 0.01})
    class Asker:
        def ask(self) -> str:
            import os

            from ray.util.state import get_actor

            me = get_actor(ray.get_runtime_context().get_actor_id(), timeout=30)
            return f"{os.environ.get('RAY_ADDRESS')} {me.state}"

    asker = Asker.remote()
    try:
        return ray.get(asker.ask.remote(), timeout=120)
    finally:
        ray.kill(asker)


def test_actors_find_their_own_cluster_beside_another_ray(local_ray):
    import ray
    from ray.cluster_utils import Cluster

    other = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 80 * 1024**2})
    try:
        address, state = _state_api_from_an_actor().split()
    finally:
        other.shutdown()
    assert address == ray.get_runtime_context().gcs_address  # this cluster's, not the other one's
    assert state == "ALIVE"


def test_a_left_behind_cluster_address_is_joined_only_while_its_gcs_answers(tmp_path, monkeypatch):
    """A killed `ray start` (or test) cluster leaves /tmp/ray/ray_current_cluster behind; a search that
    joined it waited for its GCS forever instead of starting its own Ray (docs/stack.md P9)."""
    import socket

    from ray._private.utils import write_ray_address

    from mscm.raycluster import _local_cluster_running

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # Ray's own file, in a folder of this test's
    (tmp_path / "ray").mkdir()
    assert not _local_cluster_running()  # no file
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        write_ray_address(address)
        assert _local_cluster_running()  # a live address: join it
    assert not _local_cluster_running()  # the same file, nothing listening: start a local Ray


def test_a_local_rays_trials_start_no_preemption_watcher_unless_the_user_asks(local_ray):
    """Nothing drains the one node of a local Ray, so Ray Train's PreemptionWatcher actor is off for the
    Train runs of its trials (read as Ray Train reads it, in an actor); the driver's own environment is
    left as it was, and a user's setting is kept."""
    import os

    import ray
    from ray._private import ray_constants
    from ray.train.v2._internal.constants import DEFAULT_ENABLE_PREEMPTION_WATCHER, ENABLE_PREEMPTION_WATCHER_ENV_VAR

    from mscm.raycluster import PREEMPTION_WATCHER_ENV, local_preemption_watcher

    @ray.remote(num_cpus=0, resources={"TRAIN_DRIVER_RESOURCE": 0.01})
    def watcher_enabled() -> bool:
        return ray_constants.env_bool(ENABLE_PREEMPTION_WATCHER_ENV_VAR, DEFAULT_ENABLE_PREEMPTION_WATCHER)

    assert PREEMPTION_WATCHER_ENV == ENABLE_PREEMPTION_WATCHER_ENV_VAR  # the name Ray Train reads
    assert ray.get(watcher_enabled.remote(), timeout=120) is False
    assert PREEMPTION_WATCHER_ENV not in os.environ  # set for the Ray start only
    assert local_preemption_watcher({}) == "0"
    assert local_preemption_watcher({PREEMPTION_WATCHER_ENV: "1"}) is None  # the user's "1" stays
