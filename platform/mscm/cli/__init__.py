"""The ``mscm`` command. Each module in this package that defines ``register(subparsers)`` adds a
subcommand; heavy imports (torch, ray, mlflow) happen inside the handlers so ``mscm --help`` is quick.

Errors: an :class:`~mscm.errors.MscmError` (raised here or in a Ray process and carried back) prints
``mscm <command>: error: <message>`` and at most one hint line, and exits 2. ``--debug`` or
``MSCM_DEBUG=1`` shows its traceback instead; any other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    for command in sub.choices.values():
        command.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the traceback of an error (also MSCM_DEBUG=1)",
        )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also MSCM_DEBUG=1)")
    return parser


def debug_enabled(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("MSCM_DEBUG", "") not in ("", "0", "false")


def report_error(command: str, exc: BaseException) -> int:
    """Print an MscmError (or one that ``exc`` wraps) as ``mscm <command>: error: ...``; exit code 2 (or
    the error's own ``exit_code``)."""
    from ..errors import find_mscm_error, one_line

    err = find_mscm_error(exc)
    if err is None:
        raise exc
    print(f"mscm {command}: error: {one_line(str(err))}", file=sys.stderr)
    if err.hint:
        print(f"  hint: {one_line(err.hint)}", file=sys.stderr)
    return getattr(err, "exit_code", 2)  # 2 for bad input; TrackingPending says "try again later"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    if debug_enabled(args):
        return int(args.handler(args) or 0)
    try:
        return int(args.handler(args) or 0)
    except Exception as e:  # noqa: BLE001 - report_error re-raises anything that is not ours
        return report_error(args.command, e)


if __name__ == "__main__":
    sys.exit(main())
