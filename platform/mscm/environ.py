"""Setting an environment variable for the length of a block (some libraries read options only there)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def temporary_env(name: str, value: str | None) -> Iterator[None]:
    """``name`` set to ``value`` inside the block (left as it is when ``value`` is None), restored after."""
    before = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
