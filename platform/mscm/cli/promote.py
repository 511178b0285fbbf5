"""``mscm promote``: register the best trial of a search and make it the champion if it is better."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "promote",
        help="evaluate a search's best trial against the registered champion and register it",
        description="Select the best trial of a search (by the metric of its best checkpoint), or with "
        "confirmation runs (mscm confirm) the configuration with the best confirmed mean, evaluate it and the "
        "current champion on the full test protocol of its dataset, and register it: with the alias "
        "'champion' when it is better by more than the margin (and, when both are confirmed, by a one-sided "
        "Welch test at --level), else 'challenger'. See docs/promotion.md.",
    )
    p.add_argument("--search", required=True, help="search name (as given to or printed by mscm tune)")
    p.add_argument("--trial", help="promote this trial id instead of the best one")
    p.add_argument("--registered-model", help="MLflow registered model (default: mscm-<dataset>)")
    p.add_argument("--metric", help="deciding metric: mAP (default), mINP, rank1, rank5, rank10, rank20")
    p.add_argument(
        "--margin",
        type=float,
        help="required improvement over the champion as a fraction (0.01 = one point); default 0",
    )
    p.add_argument(
        "--level",
        type=float,
        help="with confirmation runs (mscm confirm): the one-sided Welch test's level (default 0.05)",
    )
    p.add_argument("--protocol", help="deciding protocol (default: the mean over the dataset's protocols)")
    p.add_argument("--trials", type=int, help="gallery draws per protocol (default 10)")
    p.add_argument("--gallery-mode", choices=["single", "multi"], help="SYSU/LLCM gallery (default single)")
    p.add_argument("--dataset-root", help="evaluate on this copy of the dataset (default: the trial's data.root)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project store)")
    p.add_argument("--experiment", help="MLflow experiment of the search (default: look in all)")
    p.add_argument("--device", help="evaluation device (default: cuda when available, else cpu)")
    p.add_argument("--dry-run", action="store_true", help="print the decision and change nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..registry.promote import promote
    from ..registry.settings import promotion_settings

    settings = promotion_settings(
        {
            "registered_model": args.registered_model,
            "metric": args.metric,
            "margin": args.margin,
            "level": args.level,
            "protocol": args.protocol,
            "trials": args.trials,
            "gallery_mode": args.gallery_mode,
        },
        source="command-line options",
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    outcome = promote(
        args.search,
        settings,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        trial_id=args.trial,
        dataset_root=args.dataset_root,
        dry_run=args.dry_run,
        device=device,
        progress=not args.quiet,
    )
    print(outcome.message())
    if outcome.version and not args.dry_run:
        print(f"load it with: mlflow.pyfunc.load_model('models:/{outcome.registered_model}/{outcome.version}')")
    return 0
