"""``mscm config``: show a resolved run config (built-in recipe or file, plus overrides)."""

from __future__ import annotations

import argparse

from ._common import add_config_args, resolve_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print a resolved run config as YAML, or list the built-in recipes")
    add_config_args(p, required=False)
    p.add_argument("--list", action="store_true", help="list the built-in recipes")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import builtin_configs, dump_yaml

    if args.list or not args.config:
        print("\n".join(builtin_configs()))
        return 0
    print(dump_yaml(resolve_config(args)), end="")
    return 0
