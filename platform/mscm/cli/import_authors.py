"""``mscm import-authors``: the MSCMNet authors' released checkpoint as an mscm checkpoint (and, optionally,
a registered MLflow model version, the champion of its dataset)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-authors", help="convert a checkpoint of the authors' train.py (Hua-XC/MSCMNet) to an mscm checkpoint"
    )
    p.add_argument("checkpoint", help="the authors' .t/.pth file ({'net': state_dict, 'cmc', 'mAP', 'epoch'})")
    p.add_argument("--out", required=True, help="folder for the mscm checkpoint (must not hold one)")
    p.add_argument("--recipe", default="sysu", help="the run config it was trained with (default sysu: 384x192)")
    p.add_argument("--register", metavar="NAME", help="also register it in MLflow as a version of NAME")
    p.add_argument("--champion", action="store_true", help="with --register: point the champion alias at it")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project store)")
    p.add_argument("--artifact-location", help="artifact root for a database store's new experiment (mscm-imports)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry.authors_import import AuthorsImportError, import_authors, register_import

    if args.champion and not args.register:
        print("mscm import-authors: error: --champion needs --register NAME", file=sys.stderr)
        return 2
    if args.register:  # the store is checked before anything is written
        from ..preflight.stores import check_tracking_uri
        from ..tracking.mlflow_run import resolve_tracking_uri

        check_tracking_uri(resolve_tracking_uri(args.tracking_uri), artifact_location=args.artifact_location)
    try:
        report = import_authors(args.checkpoint, args.out, recipe=args.recipe)
    except AuthorsImportError as e:
        print(f"mscm import-authors: error: {e}", file=sys.stderr)
        return 2
    if args.register:
        register_import(
            report,
            args.register,
            champion=args.champion,
            tracking_uri=args.tracking_uri,
            artifact_location=args.artifact_location,
        )
    print(report.message())
    return 0
