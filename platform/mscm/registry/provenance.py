"""Provenance of a registered model: code version and a fingerprint of the evaluation data."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Iterable

from .. import __version__


def code_version() -> str:
    """``mscm <version>`` plus the git commit (and "+dirty") when running from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"mscm {__version__} ({commit}{'+dirty' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        return f"mscm {__version__}"


def data_fingerprint(paths: Iterable[str]) -> str:
    """SHA-256 over the sorted (relative-name, size, content-prefix) of the evaluation images.

    Content (first 64 KiB) rather than mtimes, so a copy of the same dataset on another machine
    gives the same fingerprint.
    """
    paths = sorted(paths)
    root = os.path.commonpath(paths) if paths else ""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.path.relpath(p, root).encode())
        h.update(str(os.path.getsize(p)).encode())
        with open(p, "rb") as f:
            h.update(f.read(65536))
    return h.hexdigest()[:16]
