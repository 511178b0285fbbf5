"""Helpers for tests that drive `mscm` as a child process: its environment, and waiting on a condition."""

from __future__ import annotations

import os
import random
import socket
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


def restartable_port(low: int = 20000, high: int = 32000) -> int:
    """A free port for a server that a test stops and starts again on the same port, drawn below the
    kernel's ephemeral range (32768-60999 here). While such a server is away its port is free; a port the
    OS hands out (``free_port``) could then go to another test's server running in parallel (pytest-xdist:
    seen as an Optuna dashboard started on the port of an MLflow server that came back under it)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{low}, {high})")
