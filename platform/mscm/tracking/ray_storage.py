"""What an ended search trial gives back in Ray's storage (issue 24), and the bytes a folder holds.

While a trial runs, its Train run (:mod:`mscm.tune.trial_storage`) keeps what a restart needs:
the latest checkpoint, and the best if that is another one (``train.checkpoints_to_keep``). Once the
trial has ended, nothing resumes it (``--resume`` restarts neither finished nor failed trials), so:

- when its MLflow run holds the logged model, its Ray checkpoints are removed: the model carries the
  best checkpoint's weights, config and metrics (:mod:`mscm.tracking.model_flavor`);
- otherwise (no model logged: ``--no-models``, a failed trial, a logging error) the best checkpoint's
  ``model.pt`` and its small files stay, without the optimiser state, and every other checkpoint goes.

The storage may be a local folder or a shared URI (``s3://``, ``gs://``): both go through pyarrow's
file systems, as Ray's own storage does.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..checkpoint import STATE_FILE

_CHECKPOINT_PREFIX = "checkpoint_"  # Ray Train's checkpoint folder names


def _fs(path: str):
    """(pyarrow file system, path inside it) for a local path or a URI."""
    import os

    import pyarrow.fs

    if "://" in path:
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), os.path.abspath(path)


def _bytes(fs, root: str) -> int:
    import pyarrow.fs

    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
    return sum(i.size or 0 for i in infos if i.type == pyarrow.fs.FileType.File)


def folder_bytes(path: str) -> int:
    """Bytes of the files under ``path``, a local folder or a URI (0 when it does not exist)."""
    return _bytes(*_fs(path))


@dataclass(frozen=True)
class Pruned:
    removed_checkpoints: int
    freed_bytes: int
    kept: str | None  # the best checkpoint kept (weights only), or None

    def describe(self) -> str:
        what = f"best weights kept in {self.kept}" if self.kept else "none kept: the logged model holds the weights"
        return f"{self.removed_checkpoints} removed, {self.freed_bytes} bytes freed; {what}"


def prune_trial_checkpoints(train_dir: str, best: str | None, keep_weights: bool) -> Pruned:
    """Shrink an ended trial's Ray checkpoints (module doc). ``best`` is its best checkpoint folder, kept
    without :data:`~mscm.checkpoint.STATE_FILE` when ``keep_weights``. Safe to repeat."""
    import pyarrow.fs

    fs, root = _fs(train_dir)
    found = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    folders = [
        i for i in found if i.type == pyarrow.fs.FileType.Directory and i.base_name.startswith(_CHECKPOINT_PREFIX)
    ]
    keep = posixpath.basename(best.rstrip("/")) if (keep_weights and best) else None
    removed = freed = 0
    kept = None
    for folder in folders:
        if folder.base_name == keep:
            state = posixpath.join(folder.path, STATE_FILE)
            info = fs.get_file_info(state)
            if info.type == pyarrow.fs.FileType.File:
                freed += info.size or 0
                fs.delete_file(state)
            kept = best
            continue
        freed += _bytes(fs, folder.path)
        fs.delete_dir(folder.path)
        removed += 1
    return Pruned(removed, freed, kept)
