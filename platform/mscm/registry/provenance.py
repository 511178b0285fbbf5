"""Provenance of a registered model: the code version (the data fingerprint is mscm.data.fingerprint)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .. import __version__


def code_version() -> str:
    """``mscm <version>`` plus the git commit (and "+dirty") when running from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"mscm {__version__} ({commit}{'+dirty' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        return f"mscm {__version__}"
