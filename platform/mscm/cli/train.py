"""``mscm train``: one training run on Ray Train, logged to MLflow."""

from __future__ import annotations

import argparse

from ._common import add_artifact_location_arg, add_config_args, resolve_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model on Ray Train (local Ray or RAY_ADDRESS), logged to MLflow")
    add_config_args(p, default="smoke")
    p.add_argument("--name", help="MLflow run name and Ray Train run name (default: <config name>-<time>)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: tracking.tracking_uri of the config)")
    add_artifact_location_arg(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..config import apply_overrides
    from ..train.trainer import run_training

    cfg = resolve_config(args)
    if args.tracking_uri:
        cfg = apply_overrides(cfg, {"tracking.tracking_uri": args.tracking_uri}, source="--tracking-uri")
    if args.artifact_location:
        cfg = apply_overrides(cfg, {"tracking.artifact_location": args.artifact_location}, source="--artifact-location")
    outcome = run_training(cfg, run_name=args.name, ray_address=args.address)
    print(f"finished: MLflow run {outcome.run_id}; best checkpoint {outcome.best_checkpoint}")
    for key in ("mAP", "rank1", "mINP"):
        if key in outcome.final_metrics:
            print(f"  final {key}: {100 * outcome.final_metrics[key]:.2f}%")
    return 0
