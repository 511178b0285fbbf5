"""``mscm confirm``: re-train a search's best configurations with new seeds and summarise the spread."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "confirm",
        help="re-train the K best configurations of a search with N new seeds (mean, std, 95%% interval)",
        description="Re-train the K best configurations of a search, each with N new training seeds, as "
        "fixed configurations (no early stopping), nested under the search's MLflow parent run. Writes "
        "confirm/confirm.csv, confirm/confirm.png and confirm/<rank>/<metric>_{mean,std,low,high} there; "
        "mscm promote then compares confirmed means.",
    )
    p.add_argument("--search", required=True, help="the search's name (its MLflow parent run)")
    add_confirm_args(p, prefix="")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"), help="MLflow tracking URI")
    p.add_argument("--experiment", help="MLflow experiment of the search (default: any)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--no-models", action="store_true", help="log no inference model per run")
    p.add_argument("--verbose", action="store_true", help="Ray Tune's status tables")
    p.set_defaults(handler=run)


def add_confirm_args(p: argparse.ArgumentParser, prefix: str) -> None:
    """``--top/--seeds`` here, ``--confirm-top/--confirm-seeds`` on ``mscm tune``."""
    top_default = 3 if not prefix else None
    p.add_argument(
        f"--{prefix}top",
        type=int,
        default=top_default,
        metavar="K",
        help="configurations to confirm" + (" (default 3)" if not prefix else " right after the search"),
    )
    p.add_argument(f"--{prefix}seeds", type=int, default=3, metavar="N", help="new seeds per configuration (default 3)")


def print_outcome(outcome) -> None:
    print(f"confirmed {len(outcome.configs)} configurations of {outcome.search} ({outcome.num_errored} runs failed)")
    for rank, c in enumerate(outcome.configs, 1):
        s = c.metrics.get(outcome.metric)
        if s is None:
            continue
        params = ", ".join(f"{k}={v}" for k, v in c.params.items())
        print(
            f"  {rank}. {c.source_trial}: {outcome.metric} {100 * s.mean:.2f} ± {100 * s.std:.2f} "
            f"(95% {100 * s.low:.2f}..{100 * s.high:.2f}, seeds {list(c.seeds)})  {params}"
        )


def confirm_and_print(args: argparse.Namespace, search: str, top: int, seeds: int, tracking_uri: str | None) -> None:
    """Run the confirmation with the command's Ray and logging flags, then print its table."""
    from ..tune.confirm import ConfirmOptions, confirm_search

    options = ConfirmOptions(
        search=search,
        top=top,
        seeds=seeds,
        tracking_uri=tracking_uri,
        experiment=getattr(args, "experiment", None),
        address=args.address,
        log_models=not args.no_models,
        verbose=args.verbose,
    )
    print_outcome(confirm_search(options))


def run(args: argparse.Namespace) -> int:
    confirm_and_print(args, args.search, args.top, args.seeds, args.tracking_uri)
    return 0
