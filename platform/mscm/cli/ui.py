"""``mscm ui``: the MLflow UI on the project's store and optuna-dashboard on its study storage."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ui",
        help="open the MLflow UI and optuna-dashboard on a store (bound to 127.0.0.1; Ctrl-C stops both)",
        description="Start the MLflow UI (one worker, no job runner) on a tracking store and optuna-dashboard on "
        "the Optuna storage of its searches, print both URLs, and run until Ctrl-C.",
    )
    p.add_argument(
        "--store",
        help="MLflow tracking URI or SQLite file (default: $MLFLOW_TRACKING_URI, else the project's mlruns/mlflow.db)",
    )
    p.add_argument(
        "--optuna-url",
        help="Optuna storage URL (default: optuna.db beside a SQLite store, else the "
        "project's mlruns/optuna.db); 'none' starts no dashboard",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000, help="MLflow UI port (default 5000)")
    p.add_argument("--optuna-port", type=int, default=8080, help="optuna-dashboard port (default 8080)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..preflight.stores import check_tracking_uri
    from ..tracking.mlflow_run import resolve_tracking_uri
    from ..tracking.ui import default_optuna_url_for, mlflow_server, optuna_dashboard, serve

    store = args.store
    if store and "://" not in store and Path(store).suffix == ".db":
        store = f"sqlite:///{Path(store).expanduser().absolute()}"
    uri = resolve_tracking_uri(store)
    check_tracking_uri(uri, must_exist=True)
    servers = [mlflow_server(uri, args.host, args.port)]
    optuna_url = args.optuna_url or default_optuna_url_for(uri)
    if optuna_url and optuna_url != "none":
        from ..preflight.stores import check_optuna_url

        file = check_optuna_url(optuna_url)
        if file is not None and not file.is_file():
            print(f"no Optuna storage at {file}: starting the MLflow UI only")
        else:
            servers.append(optuna_dashboard(optuna_url, args.host, args.optuna_port))
    return serve(servers)
