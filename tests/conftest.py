"""Shared fixtures: an isolated project folder for the whole session, a guard that the checkout's
own run folders stay as they were, one real local Ray shared by the tests that need no cluster of their
own, and the CPU kernels pinned so that training numbers do not depend on the processor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Before torch runs anything in this process or in the Ray workers it starts (they inherit the
# environment): the AVX2 kernels everywhere, so that AVX-512 on one machine and AVX2 on another do not
# round differently (mscm.train.determinism; that module imports no torch). Identity across machines it does
# not give: docs/benchmarks.md, "What still varies".
from mscm.train.determinism import pin_cpu_kernels  # noqa: E402

pin_cpu_kernels()

# OpenMP threads sleep when a parallel region ends instead of spinning for the next (libgomp's default
# spins): the suite runs more trainer threads than its two cores, and a spinning thread takes the core its
# partner needs. Read when torch's OpenMP runtime loads, so before any torch import here or in a child (Ray's
# workers and the `mscm` children inherit it). Same numbers, a quarter of the CPU for two trainings at once
# (docs/benchmarks.md, "OpenMP spinning").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Each pytest-xdist process gets its own Ray temp folder before any Ray starts here or in a child: Ray's
# test clusters (ray.cluster_utils) write their address into <tmp>/ray/ray_current_cluster, which a plain
# ray.init() in the other process would join, and die with when the node-loss test removes the nodes
# (docs/stack.md P9). A short path: Ray's Unix sockets live below it (107 characters at most).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("RAY_TMPDIR", f"/tmp/mscm-{os.environ['PYTEST_XDIST_WORKER']}")
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)
from mscm.raycluster import use_local_train_poll  # noqa: E402

GUARDED = ("mlruns", "ray_results", "data")  # the embedded defaults' stores in the checkout

# `make test` runs modules on two processes, each taking the next module when it is free (pytest-xdist,
# --dist loadfile --no-loadscope-reorder). Longest first, so that the last module to start is a short one.
# Seconds each took alone, in a serial run of the whole suite (docs/benchmarks.md, "The old suite beside the
# new, module by module"); the exclusive modules run after these, alone. A wrong order costs time, not results.
LONGEST_FIRST = (
    "test_tune_outage.py",  # 308 (mostly waiting out the outage: 217 CPU-s)
    "test_tune_search.py",  # 272
    "test_tune_interrupts.py",  # 246
    "test_train_learns.py",  # 144
    "test_tune_node_loss.py",  # 126
    "test_stores_postgres.py",  # 64
    "test_bad_input.py",  # 62
)


def pytest_collection_modifyitems(config, items) -> None:
    """Modules in LONGEST_FIRST's order, then the other slow ones, then the rest (a stable sort: a module's
    tests stay together and in their order)."""
    slow = {item.path.name for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST) + (name not in slow)

    items.sort(key=rank)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its size and mtime (folders count too: an empty one is a write)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            out[str(path.relative_to(REPO))] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return out


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched():
    """Fail the suite if any test wrote into the checkout's mlruns/, ray_results/ or data/."""
    before = {name: _snapshot(REPO / name) for name in GUARDED}
    existed = {name: (REPO / name).exists() for name in GUARDED}
    yield
    changed = []
    for name in GUARDED:
        after = _snapshot(REPO / name)
        if (REPO / name).exists() != existed[name]:
            changed.append(f"{name}/ was {'removed' if existed[name] else 'created'}")
        diff = sorted(set(after.items()) ^ set(before[name].items()))
        if diff:
            changed.append(f"{name}/: {len(diff)} entries changed, e.g. {diff[0][0]}")
    if changed:
        pytest.fail("the tests wrote into the checkout: " + "; ".join(changed), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def isolated_project(tmp_path_factory) -> str:
    """Point MSCM_HOME at a temporary folder so no test writes into the checkout (MLflow store, Ray
    results, synthetic data, caches). Set before any Ray starts, so Ray workers inherit it."""
    home = str(tmp_path_factory.mktemp("mscm_home"))
    old = os.environ.get("MSCM_HOME")
    os.environ["MSCM_HOME"] = home
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    use_local_train_poll()  # also for the tests' own Ray clusters (ray.cluster_utils), which skip init_ray
    yield home
    if old is None:
        os.environ.pop("MSCM_HOME", None)
    else:
        os.environ["MSCM_HOME"] = old


@pytest.fixture(scope="session")
def _shared_ray_session(isolated_project):
    """Shuts the shared local Ray down once, at the end of the session."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def local_ray(_shared_ray_session):
    """The session's real local Ray (2 CPUs, small object store, trial-driver slots): started by the first
    module that asks, kept for the next ones (a start costs 15-25 s here). A test that needs a cluster of
    its own (ray.cluster_utils.Cluster) shuts it down first; the next module that asks starts it again.
    Tests share the cluster, not state: each writes to its own stores and storage paths."""
    import ray

    from mscm.raycluster import init_ray

    if not ray.is_initialized():
        init_ray(num_cpus=2)
    yield ray.cluster_resources()


@pytest.fixture(scope="module")
def session_ray_address(local_ray) -> str:
    """The session's local Ray, for a `mscm tune` child process to join through RAY_ADDRESS, as a search on
    a cluster joins the cluster's Ray, instead of starting one of its own (about 11 CPU-s and 12-25 s
    here). For searches whose test is about a service, not about Ray's own start or end."""
    import ray

    return ray.get_runtime_context().gcs_address
