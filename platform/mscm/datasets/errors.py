"""Errors raised on bad input data. They name the file or folder and what was expected there."""

from __future__ import annotations

from ..errors import MscmError

ROOT_HINT = "--set data.root=/path/to/the/dataset (mscm tune: --dataset-root, mscm evaluate: --dataset)"
SKIP_HINT = "--set data.skip_corrupt=true skips unreadable images and reports how many were skipped"


class DatasetError(MscmError, ValueError):
    """A dataset folder, index file or image is missing or malformed."""


class CorruptImageError(DatasetError):
    """An image file cannot be read or decoded."""

    def __init__(self, path: str, reason: str, *, hint: str | None = SKIP_HINT):
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path}: {reason}", hint=hint)
