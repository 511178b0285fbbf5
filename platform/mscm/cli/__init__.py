"""The ``mscm`` command. Each module in this package that defines ``register(subparsers)`` adds a
subcommand; heavy imports (torch, ray, mlflow) happen inside the handlers so ``mscm --help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .. import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mscm", description="MSCMNet VI-ReID: train, search, evaluate and promote models."
    )
    parser.add_argument("--version", action="version", version=f"mscm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from ..config import ConfigError

    try:
        return int(args.handler(args) or 0)
    except ConfigError as e:
        print(f"mscm {args.command}: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
