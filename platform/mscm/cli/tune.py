"""``mscm tune``: the hyperparameter search (Ray Tune + Optuna + ASHA), every trial in MLflow.

Defaults may come from the environment, so the job script runs unchanged on a cluster whose nodes
export them (cluster.yaml does): MSCM_SEARCH_SPACE, MSCM_DATASET_ROOT, MSCM_STORAGE_PATH,
MSCM_OPTUNA_URL, MLFLOW_TRACKING_URI, RAY_ADDRESS.
"""

from __future__ import annotations

import argparse
import os

from ._common import add_artifact_location_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="run a hyperparameter search over a search_spaces/*.yaml file")
    add_tune_args(p)
    p.set_defaults(handler=run)


def add_tune_args(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument(
        "--space",
        default=env("MSCM_SEARCH_SPACE", "smoke"),
        help="search-space YAML file or shipped name (smoke, mimb); default: $MSCM_SEARCH_SPACE or smoke",
    )
    p.add_argument(
        "--name", help="search name (Tune experiment, Optuna study, MLflow parent run); needed with --resume"
    )
    p.add_argument(
        "--dataset-root",
        default=env("MSCM_DATASET_ROOT"),
        help="dataset folder in its original layout (default: synthetic data)",
    )
    p.add_argument("--tracking-uri", default=env("MLFLOW_TRACKING_URI"), help="MLflow tracking URI")
    add_artifact_location_arg(p)
    p.add_argument(
        "--storage-path",
        default=env("MSCM_STORAGE_PATH"),
        help="Ray results (shared storage on multi-node clusters: NFS path or s3://)",
    )
    p.add_argument("--optuna-url", default=env("MSCM_OPTUNA_URL"), help="Optuna RDB storage URL (SQLAlchemy)")
    p.add_argument("--trials", type=int, help="number of trials (default: the space's budget)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the space's budget)")
    p.add_argument("--workers-per-trial", type=int, help="DDP workers per trial")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per worker (0 = CPU training)")
    p.add_argument("--max-concurrent", type=int, help="cap on trials running at once (default: what fits)")
    p.add_argument("--time-budget", type=float, help="wall-clock budget of the search in seconds")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search --name")
    p.add_argument("--warm-start", metavar="STUDY", help="seed the sampler with an earlier study's completed trials")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--verbose", action="store_true", help="Ray Tune's status tables instead of one line per report")
    p.add_argument(
        "--no-models",
        action="store_true",
        help="log no inference model per trial (its weights stay in Ray's checkpoints only; "
        "such trials cannot be promoted)",
    )
    from .confirm import add_confirm_args

    add_confirm_args(p, prefix="confirm-")
    add_watch_args(p)
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the untrained model's evaluation on the driver before the search (baseline/* metrics)",
    )


def add_watch_args(p: argparse.ArgumentParser) -> None:
    """How the search waits on its services and watches its trials."""
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="at the end, how long to wait for MLflow writes still queued (the store may be away); "
        "what is left stays in the spool for `mscm sync` and the exit code is 75 (default 300)",
    )
    p.add_argument(
        "--silence-factor",
        type=float,
        default=5.0,
        metavar="X",
        help="name a running trial that has not reported for X times the slowest epoch seen (at least 60 s)",
    )
    p.add_argument("--fail-silent", action="store_true", help="also fail such a trial, so that the search goes on")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..tune.tuner import SearchOptions, run_search

    if args.resume and not args.name:
        raise UsageError("--resume needs --name (the search to continue)")
    if args.silence_factor <= 1:
        raise UsageError(f"--silence-factor {args.silence_factor:g}: must be above 1 (a multiple of the slowest epoch)")
    outcome = run_search(
        SearchOptions(
            space=args.space,
            name=args.name,
            dataset_root=args.dataset_root,
            tracking_uri=args.tracking_uri,
            artifact_location=args.artifact_location,
            storage_path=args.storage_path,
            optuna_url=args.optuna_url,
            trials=args.trials,
            epochs=args.epochs,
            workers_per_trial=args.workers_per_trial,
            gpus_per_worker=args.gpus_per_worker,
            max_concurrent=args.max_concurrent,
            time_budget_s=args.time_budget,
            resume=args.resume,
            warm_start=args.warm_start,
            address=args.address,
            log_models=not args.no_models,
            baseline=not args.no_baseline,
            silence_factor=args.silence_factor,
            fail_silent=args.fail_silent,
            drain_timeout_s=args.drain_timeout,
            verbose=args.verbose,
        )
    )
    print(f"search {outcome.name}: {outcome.num_trials} trials ({outcome.num_errored} failed)")
    if outcome.best_trial_id:
        shown = ", ".join(
            f"{k} {100 * v:.2f}%" for k, v in outcome.best_metrics.items() if k in ("mAP", "rank1", "mINP")
        )
        where = f"model {outcome.best_model_uri}" if outcome.best_model_uri else f"checkpoint {outcome.best_checkpoint}"
        print(f"best trial {outcome.best_trial_id}: {shown}\n  {where}")
    if outcome.baseline:
        base = ", ".join(f"{k} {100 * v:.2f}%" for k, v in outcome.baseline.items())
        print(f"untrained baseline: {base}")
    if args.confirm_top:
        from .confirm import confirm_and_print

        confirm_and_print(args, outcome.name, args.confirm_top, args.confirm_seeds, outcome.tracking_uri)
    print(f"promote it with: mscm promote --search {outcome.name}")
    return 0
