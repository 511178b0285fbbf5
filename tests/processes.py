"""Helpers for tests that drive `mscm` as a child process: its environment, and waiting on a condition."""

from __future__ import annotations

import os
import sys
import time


def child_env(**extra: str) -> dict[str, str]:
    """This environment for a child `python -m mscm`, with this checkout's platform/ on its path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p.endswith("platform")), **extra}


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)
