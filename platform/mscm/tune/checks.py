"""Small validators for the sections of a search-space file.

Each raises :class:`~mscm.config.ConfigError` naming the file (``source``) and the key inside it.
"""

from __future__ import annotations

import math
from typing import Any

from ..config import ConfigError


def mapping(
    value: Any, source: str, key: str, *, allowed: set[str], required: set[str] = frozenset()
) -> dict[str, Any]:
    """``value`` as a mapping whose keys are all in ``allowed`` and include ``required``."""
    def sub(k: Any) -> str:
        return f"{key}.{k}" if key else str(k)

    if not isinstance(value, dict):
        raise ConfigError(source, key, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ConfigError(source, sub(unknown[0]), f"unknown key (known keys: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(value))
    if missing:
        raise ConfigError(source, sub(missing[0]), "is required")
    return value


def number(value: Any, source: str, key: str, *, integer: bool = False) -> int | float:
    """A finite int (``integer``) or number; explains PyYAML reading ``1e-4`` as text."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, str):
        hint = ""
        try:
            float(value)
            hint = " (YAML 1.1 reads exponents without a dot as text: write 1.0e-4, not 1e-4)"
        except ValueError:
            pass
        raise ConfigError(source, key, f"must be {kind}, got the text {value!r}{hint}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(source, key, f"must be {kind}, got {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigError(source, key, f"must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(source, key, f"must be finite, got {value!r}")
    return value


def bounded(
    value: Any, source: str, key: str, *, integer: bool = False, gt: float | None = None, ge: float | None = None
) -> int | float:
    """:func:`number` with a lower bound."""
    v = number(value, source, key, integer=integer)
    if gt is not None and not v > gt:
        raise ConfigError(source, key, f"must be > {gt}, got {v!r}")
    if ge is not None and not v >= ge:
        raise ConfigError(source, key, f"must be >= {ge}, got {v!r}")
    return v


def boolean(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(source, key, f"must be true or false, got {value!r}")
    return value


def text(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, key, f"must be a non-empty string, got {value!r}")
    return value


def one_of(value: Any, options: tuple[str, ...] | list[str], source: str, key: str) -> str:
    if value not in options:
        raise ConfigError(source, key, f"must be one of {list(options)}, got {value!r}")
    return value
