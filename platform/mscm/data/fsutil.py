"""Small file-system helpers for outputs that several processes may build at once (Ray workers on one
node, DDP ranks): an advisory file lock, and publish-by-rename so nobody reads half a result."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive ``flock`` on ``path`` (created if needed). Processes on one node serialise on it;
    on file systems without flock the atomic renames below still keep readers safe."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def temp_sibling(path: str | os.PathLike, *, directory: bool = False) -> Path:
    """A fresh temporary file or folder next to ``path`` (same file system, so rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    return Path(name)


def publish_dir(tmp: Path, final: Path) -> bool:
    """Rename the finished folder ``tmp`` to ``final``. Returns False (and removes ``tmp``) when another
    process published ``final`` first."""
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        if final.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise
