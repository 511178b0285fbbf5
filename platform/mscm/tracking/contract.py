"""The MLflow record's names, in one place: tags, the run-naming rule and the experiment kind.

Search, training and the registry write and read these; none of them spells a tag itself. No Ray
or MLflow import here, so every layer (and the registry, which runs without Ray) can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Run tags
KIND_TAG = "mscm.kind"  # search | train | promotion | import
SEARCH_TAG = "mscm.search"  # the search's name, on its parent run
TRIAL_TAG = "ray_trial_id"  # a trial run's Ray Tune trial id
STATUS_TAG = "mscm.trial_status"  # completed | stopped_early | failed | interrupted
SAMPLED_TAG = "mscm.sampled"  # comma-separated dotted keys the search sampled (their values are params)
CHECKPOINT_TAG = "best_checkpoint"  # path of a run's best Ray checkpoint
MODEL_URI_TAG = "model_uri"  # the logged inference model
MODEL_ERROR_TAG = "model_logging_error"  # why a run has no logged model
RAY_CHECKPOINTS_TAG = "mscm.ray_checkpoints"  # what an ended trial left in Ray's storage (tracking/ray_storage.py)
RETRIES_TAG = "mscm.retries"  # times a trial's Train run was started again after losing workers or nodes
RETRY_REASON_TAG = "mscm.retry_reason"  # why, the last time
DATASET_TAG = "mscm.dataset"
# The split a run's eval/, best/ (and baseline/) numbers come from: "val" (held-out training ids) or "test".
SPLIT_TAG = "mscm.eval_split"
# A confirmation run (mscm confirm): the search trial whose configuration it re-trains, and its seed.
CONFIRM_TAG = "mscm.confirm_of"
SEED_TAG = "mscm.seed"

KIND_SEARCH, KIND_TRAIN, KIND_PROMOTION, KIND_IMPORT = "search", "train", "promotion", "import"

# Experiment tag that makes MLflow 3's UI open on training runs instead of its GenAI overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# Short names in trial run names (the last part of the dotted key otherwise).
_SHORT = {"mimb_scales": "mimb", "qct_margin": "margin"}


def short_value(value: Any) -> str:
    """A sampled value as a run name shows it: ``0.79``, ``1.6e-3``, ``2``, ``adamw``."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value != 0 and math.isfinite(value) and abs(value) < 0.01:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.3g}"


def trial_run_name(index: int, sampled: Mapping[str, Any]) -> str:
    """``t03 mimb=2 margin=0.79 lr=1.6e-3``: search order, then each sampled value."""
    parts = [f"t{index:02d}"]
    for key, value in sampled.items():
        last = key.rsplit(".", 1)[-1]
        parts.append(f"{_SHORT.get(last, last)}={short_value(value)}")
    return " ".join(parts)


def search_filter(name: str) -> str:
    """MLflow filter for the parent run of the search ``name``."""
    quoted = name.replace("'", "\\'")
    return f"tags.`{SEARCH_TAG}` = '{quoted}' and tags.`{KIND_TAG}` = '{KIND_SEARCH}'"
