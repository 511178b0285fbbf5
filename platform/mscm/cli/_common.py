"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from ..errors import UsageError


def add_config_args(p: argparse.ArgumentParser, *, required: bool = True, default: str | None = None) -> None:
    p.add_argument(
        "--config",
        "-c",
        required=required and default is None,
        default=default,
        help="run config: a YAML file or a built-in recipe (sysu, regdb, llcm, smoke)",
    )
    p.add_argument(
        "--set",
        "-s",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted key, e.g. --set loss.qct_margin=0.5 (repeatable)",
    )


def add_artifact_location_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--artifact-location",
        help="where new MLflow experiments keep artifacts: a shared folder or s3://...; needed with a database "
        "tracking URI (postgresql://...) used without a server (config: tracking.artifact_location)",
    )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` -> ``{"a.b": 1, "c": [1, 2]}`` (values parsed as YAML scalars/lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}", hint="for example --set loss.qct_margin=0.5")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def resolve_config(args: argparse.Namespace):
    from ..config import load_run_config

    return load_run_config(args.config, parse_overrides(args.set))
