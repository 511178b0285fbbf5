"""Shared fixtures: an isolated project folder for the whole session, a guard that the checkout's
own run folders stay as they were, and real local Ray clusters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUARDED = ("mlruns", "ray_results", "data")  # the embedded defaults' stores in the checkout


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
    yield home
    if old is None:
        os.environ.pop("MSCM_HOME", None)
    else:
        os.environ["MSCM_HOME"] = old


@pytest.fixture(scope="module")
def local_ray(isolated_project):
    """A real local Ray (2 CPUs, small object store, trial-driver slots), shut down after the module."""
    import ray

    from mscm.raycluster import init_ray

    if ray.is_initialized():
        ray.shutdown()
    resources = init_ray(num_cpus=2)
    yield resources
    ray.shutdown()
