"""Shared fixtures: an isolated project folder for the whole session, and real local Ray clusters."""

from __future__ import annotations

import os

import pytest


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
