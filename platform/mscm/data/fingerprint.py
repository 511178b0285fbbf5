"""A content fingerprint of a set of image files, the same on every machine that holds a copy."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

PREFIX_BYTES = 65536  # SYSU, RegDB and LLCM images are smaller than this: in practice the whole file


def data_fingerprint(paths: Iterable[str]) -> str:
    """SHA-256 (16 hex digits) over the sorted (name relative to the common folder, size, first 64 KiB)
    of the files. Content rather than mtimes, so a copy of the same dataset gives the same value."""
    paths = sorted(paths)
    root = os.path.commonpath(paths) if paths else ""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.relpath(p, root).encode())
        h.update(str(os.path.getsize(p)).encode())
        with open(p, "rb") as f:
            h.update(f.read(PREFIX_BYTES))
    return h.hexdigest()[:16]
