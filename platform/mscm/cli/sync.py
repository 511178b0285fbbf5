"""``mscm sync``: send the MLflow writes a search left in its spool (its store was away when it ended),
then finish the search's record as the search would have (summary, best trial, parent run ended)."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="send a search's queued MLflow writes (after `mscm tune` exited 75)")
    p.add_argument("--search", required=True, help="the search's name (its spool is <storage-path>/NAME.mlflow-spool)")
    p.add_argument("--storage-path", default=os.environ.get("MSCM_STORAGE_PATH"), help="the search's Ray storage path")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"), help="MLflow tracking URI")
    p.add_argument(
        "--optuna-url",
        default=os.environ.get("MSCM_OPTUNA_URL"),
        help="the search's Optuna storage (default: as the search recorded it)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the store (default 600)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..paths import ray_results_dir
    from ..tracking.mlflow_run import resolve_tracking_uri
    from ..tracking.spool import WRITES, Spool, spool_dir
    from ..tune.sync import sync_command, sync_search

    storage = args.storage_path or str(ray_results_dir())
    folder = spool_dir(storage, args.search)
    if not (folder / WRITES).is_file():
        raise UsageError(f"no spool of search {args.search!r} at {folder}", hint="--storage-path names where it ran")
    uri = resolve_tracking_uri(args.tracking_uri)
    command = sync_command(args.search, storage, uri)
    sent, finished = sync_search(Spool(folder), uri, args.timeout, command, args.optuna_url)
    print(f"sync {args.search}: {sent} MLflow writes sent to {uri}" + ("; search record finished" if finished else ""))
    return 0
