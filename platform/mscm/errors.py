"""The error contract: every error mscm raises on purpose derives from :class:`MscmError`.

Such an error is the user's to fix (a config key, a file, a store), so the command line prints its
message on one line, with an optional hint, and exits 2 without a traceback (``mscm.cli``). Ray
moves exceptions between processes by pickling them, so every subclass must survive a pickle
round trip whatever its ``__init__`` takes: :meth:`MscmError.__reduce__` rebuilds an instance from
its args and attributes without calling ``__init__`` again.

The category classes live here; the modules that raise them define narrower subclasses where a
caller needs to tell them apart (``CorruptImageError`` in ``mscm.datasets.errors``, ``ConfigError`` in
``mscm.config.loader``, ...). This module imports nothing heavy (no Ray, torch or MLflow).
"""

from __future__ import annotations

import re
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _rebuild(cls: type, args: tuple, state: dict[str, Any]) -> MscmError:
    err = cls.__new__(cls, *args)
    err.args = args
    err.__dict__.update(state)
    return err


class MscmError(Exception):
    """An error in the user's input or environment, with a message that names the file, key or value.

    ``hint`` is one line that says how to fix it, where there is a fix (shown by the command line).
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None):
        from .redact import redact  # a URI in a message never shows its password

        super().__init__(redact(message))
        if hint:
            self.hint = redact(hint)

    def __reduce__(self):
        # BaseException's own reduce calls cls(*args): wrong for subclasses whose __init__ takes
        # other arguments than the message (that made CorruptImageError unpicklable on the driver).
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(MscmError, ValueError):
    """Command-line options that do not go together or cannot be parsed."""


class StorageError(MscmError, OSError):
    """A results folder (``train.storage_path``, caches) that cannot be created or written."""


class TrackingError(MscmError, RuntimeError):
    """An MLflow tracking URI (or its artifact root) or an Optuna storage URL that is malformed,
    unreachable or unwritable, or a search record that is not there."""


class TrackingPending(TrackingError):
    """A search finished, but its MLflow store did not take every write in time; they wait in the
    search's spool, and ``mscm sync`` sends them. Exit code 75 (EX_TEMPFAIL: try again later)."""

    exit_code = 75


class SearchInterrupted(MscmError):
    """A search stopped by Ctrl-C (exit code 130) or SIGTERM (143); its message names the resume command."""

    exit_code = 130


class RegistryError(MscmError, RuntimeError):
    """Promotion, export and retrieval errors (``mscm.registry``)."""


def one_line(text: str) -> str:
    """``text`` without terminal colour codes, its lines joined (a message for a single stderr line)."""
    lines = [ln.strip() for ln in _ANSI.sub("", text).splitlines() if ln.strip()]
    return " ".join(lines)


def find_mscm_error(exc: BaseException | None, _depth: int = 0) -> MscmError | None:
    """The MscmError that ``exc`` is or wraps, else None.

    Ray wraps errors from other processes: a task's ``RayTaskError`` keeps it as ``cause``, Ray
    Train's ``UserExceptionWithTraceback`` as ``_base_exc`` and its ``WorkerGroupError`` per rank in
    ``worker_failures``; Python chains keep it in ``__cause__``. Duck-typed, so this needs no Ray.
    """
    if exc is None or _depth > 8:
        return None
    # A RayTaskError is also an instance of the class it wraps, but its str() is the remote
    # traceback: look inside Ray's wrappers before taking the object itself.
    wrapped = [getattr(exc, "cause", None), getattr(exc, "_base_exc", None)]
    for inner in wrapped:
        if isinstance(inner, BaseException) and inner is not exc:
            found = find_mscm_error(inner, _depth + 1)
            if found is not None:
                return found
    if isinstance(exc, MscmError):
        return exc
    nested: list[Any] = [getattr(exc, "controller_failure", None), exc.__cause__]
    failures = getattr(exc, "worker_failures", None)
    if isinstance(failures, dict):
        nested += [failures[rank] for rank in sorted(failures)]
    for inner in nested:
        if isinstance(inner, BaseException):
            found = find_mscm_error(inner, _depth + 1)
            if found is not None:
                return found
    return None


def qualified_names() -> set[str]:
    """``module.Class`` of every MscmError subclass defined so far (how tracebacks print them)."""
    out, todo = set(), [MscmError]
    while todo:
        cls = todo.pop()
        out.add(f"{cls.__module__}.{cls.__qualname__}")
        todo.extend(cls.__subclasses__())
    return out


__all__ = [
    "MscmError",
    "UsageError",
    "StorageError",
    "TrackingError",
    "RegistryError",
    "find_mscm_error",
    "one_line",
    "qualified_names",
]
