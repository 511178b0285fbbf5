"""Where a search trial's Train run lives in Ray's storage, and what a search holds there at its end.
Ended trials shrink their checkpoints through the spool (:mod:`mscm.tracking.ray_storage`)."""

from __future__ import annotations

import posixpath

from ..tracking.ray_storage import folder_bytes


def train_run_name(trial_id: str) -> str:
    """The Train run of a search trial: the same name on every attempt, so a retry or a resumed search
    continues it from its latest checkpoint."""
    return f"train-trial_id={trial_id}"


def train_run_dir(storage_path: str, trial_id: str) -> str:
    return posixpath.join(storage_path.rstrip("/"), train_run_name(trial_id))


def storage_line(storage_path: str, search: str, trial_ids: set[str]) -> str:
    """What a search holds in Ray's storage, for the end of ``mscm tune``: its Tune experiment and its
    trials' Train runs (their checkpoints)."""
    experiment = folder_bytes(posixpath.join(storage_path.rstrip("/"), search))
    runs = sum(folder_bytes(train_run_dir(storage_path, t)) for t in sorted(trial_ids))
    return (
        f"Ray storage used: {(experiment + runs) / 1e6:.1f} MB in {storage_path} (the Tune experiment "
        f"{experiment / 1e6:.1f} MB, {len(trial_ids)} trials' Train runs {runs / 1e6:.1f} MB)"
    )
