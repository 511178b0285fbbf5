"""Errors raised on bad input data. They name the file or folder and what was expected there."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset folder, index file or image is missing or malformed."""


class CorruptImageError(DatasetError):
    """An image file cannot be read or decoded."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path}: {reason}")
