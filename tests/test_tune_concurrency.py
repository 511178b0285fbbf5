"""How many trials run at once: from the resources a trial needs and what the cluster has, or can grow
to (the launcher's config on a cluster head)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mscm.config import load_run_config
from mscm.errors import UsageError
from mscm.raycluster import DRIVER_RESOURCE, autoscaling_capacity
from mscm.tune.space_loader import load_search_space
from mscm.tune.tuner import concurrency_for

ROOT = Path(__file__).resolve().parents[1]


def _cfg(workers: int, cpus: float, gpus: float = 0):
    values = {"train.num_workers": workers, "train.cpus_per_worker": cpus, "train.use_gpu": gpus > 0}
    if gpus:
        values["train.gpus_per_worker"] = gpus
    return load_run_config("smoke", values)


@pytest.mark.parametrize(
    "cfg, resources, requested, expected",
    [
        (_cfg(2, 1), {"CPU": 2, DRIVER_RESOURCE: 4}, None, 1),  # this machine: one 2-worker trial at a time
        (_cfg(2, 1), {"CPU": 9, DRIVER_RESOURCE: 4}, None, 4),  # whole trials only: 4 x 2 CPUs of 9
        (_cfg(2, 1), {"CPU": 9, DRIVER_RESOURCE: 4}, 3, 3),  # a requested cap below the fit
        (_cfg(2, 1), {"CPU": 9, DRIVER_RESOURCE: 4}, 10, 4),  # ...and never above it
        (_cfg(1, 4, 1), {"CPU": 64, "GPU": 3, DRIVER_RESOURCE: 4}, None, 3),  # GPU-bound
        (_cfg(2, 4, 0.5), {"CPU": 64, "GPU": 3, DRIVER_RESOURCE: 4}, None, 3),  # fractional GPUs: 1 GPU per trial
        (_cfg(1, 1), {"CPU": 64, DRIVER_RESOURCE: 0.02}, None, 2),  # trial-driver slivers run out
    ],
)
def test_concurrency_fits_whole_trials(cfg, resources, requested, expected):
    assert concurrency_for(cfg, resources, requested) == expected


def test_a_trial_that_can_never_fit_is_an_error_that_says_what_it_needs():
    with pytest.raises(UsageError, match=r"one trial needs 4 CPU \+ 2 GPU"):
        concurrency_for(_cfg(2, 2, 1), {"CPU": 64, "GPU": 1, DRIVER_RESOURCE: 4}, None)
    with pytest.raises(UsageError, match="needs 2 CPU"):
        concurrency_for(_cfg(2, 1), {"CPU": 1, DRIVER_RESOURCE: 4}, None)


def test_autoscaling_capacity_counts_each_node_type_to_its_maximum(tmp_path):
    conf = {
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0, DRIVER_RESOURCE: 4}, "max_workers": 0},
            "gpu_1x": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0, "max_workers": 4},
            "gpu_4x": {"resources": {"CPU": 32, "GPU": 4}, "max_workers": 2},
        },
    }
    path = tmp_path / "ray_bootstrap_config.yaml"
    path.write_text(yaml.safe_dump(conf))
    assert autoscaling_capacity(path) == {"CPU": 96.0, "GPU": 12.0, DRIVER_RESOURCE: 4.0}
    assert autoscaling_capacity(tmp_path / "absent.yaml") is None  # not a launcher head


def test_the_shipped_cluster_fits_the_paper_scale_search(tmp_path):
    capacity = autoscaling_capacity(ROOT / "cluster.yaml")
    assert capacity["GPU"] > 0 and capacity[DRIVER_RESOURCE] > 0
    space = load_search_space("mimb")
    assert concurrency_for(space.template, capacity, None) >= 2
