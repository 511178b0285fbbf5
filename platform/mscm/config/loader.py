"""Turn plain dicts (from YAML) into validated config dataclasses, and back.

Validation happens here, at the edge: unknown keys, wrong types and out-of-range values raise
:class:`ConfigError` naming the source file and the dotted key. The dataclasses themselves carry
their bounds in field metadata (see :func:`spec`), so the schema is the single source of truth.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from ..errors import MscmError

T = TypeVar("T")

_MISSING = object()


class ConfigError(MscmError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key or '<root>'}: {problem}")


def spec(
    default: Any = _MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    doc: str = "",
    default_factory: Any = _MISSING,
    key: str | None = None,
) -> Any:
    """A dataclass field with numeric bounds (checked on load) and a one-line description. ``key``: the
    name in the file when it cannot be a Python name (``in`` of a search-space condition)."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc, "key": key}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _file_key(f: dataclasses.Field) -> str:
    return f.metadata.get("key") or f.name


def _not_a_number(value: Any, kind: str) -> str:
    """The problem of a non-numeric value; explains PyYAML 1.1 reading ``1e-4`` as text."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return f"must be {kind}, got the text {value!r}"
        return f"must be {kind}, got the text {value!r} (YAML 1.1 reads exponents without a dot as text: write 1.0e-4)"
    return f"must be {kind}, got {value!r}"


def _check_bounds(value: Any, meta: dict, source: str, key: str) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_bounds(v, meta, source, f"{key}[{i}]")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(source, key, f"must be finite, got {value!r}")
    for name, ok, sym in (
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ):
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            raise ConfigError(source, key, f"must be {sym} {bound}, got {value!r}")


def check_value(value: Any, tp: Any, source: str, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` as a config field of that type is (one value
    outside a dataclass, such as the ``type`` that picks a search-space parameter's section)."""
    return _coerce(value, tp, source, key)


def _coerce(value: Any, tp: Any, source: str, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only lossless cases (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, source, key)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(source, key, f"must be one of {list(allowed)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, source=source, prefix=key)
    if origin in (list, tuple):
        return _coerce_sequence(value, tp, source, key)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"must be a mapping, got {type(value).__name__}")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {
            _coerce(k, k_tp, source, f"{key}.{k}"): _coerce(v, v_tp, source, f"{key}.{k}") for k, v in value.items()
        }
    return _coerce_scalar(value, tp, source, key)


def _coerce_union(value: Any, tp: Any, source: str, key: str) -> Any:
    args = get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(source, key, f"must not be null (expected {_type_name(tp)})")
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:  # Optional[X]: X's own error, with its own (possibly nested) key
        return _coerce(value, options[0], source, key)
    errors = []
    for arg in options:
        try:
            return _coerce(value, arg, source, key)
        except ConfigError as e:
            errors.append(e.problem)
    raise ConfigError(source, key, "; ".join(errors))


def _coerce_sequence(value: Any, tp: Any, source: str, key: str) -> list | tuple:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(source, key, f"must be a list, got {type(value).__name__}")
    origin, args = get_origin(tp), get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(source, key, f"must have {len(args)} items, got {len(value)}")
        items = [_coerce(v, a, source, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
    else:
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce_scalar(value: Any, tp: Any, source: str, key: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, _not_a_number(value, "an integer"))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, _not_a_number(value, "a number"))
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(source, key, f"must be {_type_name(tp)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, *, source: str = "", prefix: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``; every key must be a field of ``cls``."""
    if not isinstance(data, dict):
        raise ConfigError(source, prefix, f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {_file_key(f): f for f in dataclasses.fields(cls) if f.init}  # by their name in the file
    unknown = sorted((str(k) for k in set(data) - set(fields)), key=str)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(source, key, f"unknown key (known keys: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        f = fields[name]
        coerced = _coerce(value, hints[f.name], source, key)
        _check_bounds(coerced, f.metadata, source, key)
        kwargs[f.name] = coerced
    missing = [
        n
        for n, f in fields.items()
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        key = f"{prefix}.{missing[0]}" if prefix else missing[0]
        raise ConfigError(source, key, "is required")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if e.source or not source:
            raise
        key = ".".join(k for k in (prefix, e.key) if k)
        raise ConfigError(source, key, e.problem) from None


def to_dict(cfg: Any) -> Any:
    """Plain nested dict of a config dataclass (tuples become lists, so it dumps as clean YAML)."""
    if dataclasses.is_dataclass(cfg):
        return {_file_key(f): to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for MLflow params and search-space keys)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def set_dotted(d: dict, key: str, value: Any, *, source: str = "overrides") -> None:
    """Set ``d["a"]["b"] = value`` for ``key == "a.b"``; the path must already exist in ``d``."""
    parts = key.split(".")
    node = d
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(source, ".".join(parts[: i + 1]), "unknown key")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def apply_overrides(cfg: T, overrides: dict[str, Any], *, source: str = "overrides") -> T:
    """A new validated config with dotted-key overrides applied (``{"loss.qct_margin": 0.5}``)."""
    data = to_dict(cfg)
    for key, value in overrides.items():
        set_dotted(data, key, value, source=source)
    return from_dict(type(cfg), data, source=source)


def has_dotted(cls: type, key: str) -> bool:
    """Whether ``key`` names a field (nested through dataclasses) of the config class ``cls``."""
    tp: Any = cls
    for part in key.split("."):
        if not dataclasses.is_dataclass(tp):
            return False
        hints = typing.get_type_hints(tp)
        if part not in hints:
            return False
        tp = hints[part]
    return True


def read_yaml(path: str | Path) -> dict:
    """``yaml.safe_load`` a mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "", "file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(str(path), "", f"not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", f"top level must be a mapping, got {type(data).__name__}")
    return data
