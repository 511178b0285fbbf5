"""Bytes a search leaves in MLflow: per trial (its run's artifacts plus its logged model) against its
weights, measured on a finished search's SQLite store, and the same figure at the paper's scale
computed from the parameter count of the sysu recipe (resnet50 MSCMNet, 395 training identities).

    python bench/tracking_bytes.py --store sqlite:////tmp/mscm-ui-demo-XXXX/mlflow.db --search ui-demo
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlparse

SYSU_TRAIN_IDS = 395  # SYSU-MM01 training identities (the paper's protocol)
MIMB_TRIALS = 40  # budget.trials of search_spaces/mimb.yaml


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0


def trial_bytes(client, run) -> tuple[int, int]:
    """(bytes of the run's artifacts and of its logged model, bytes of the model's weights)."""
    from mscm.tracking.model_logging import load_logged_model

    run_root = Path(urlparse(run.info.artifact_uri).path)
    total = folder_bytes(run_root)
    uri = run.data.tags.get("model_uri")
    if not uri:
        return total, 0
    model = client.get_logged_model(uri.split("/", 1)[1])
    total += folder_bytes(Path(urlparse(model.artifact_location).path))
    state = load_logged_model(uri, client.tracking_uri)[0].state_dict()
    return total, sum(t.numel() * t.element_size() for t in state.values())


def paper_weights_bytes() -> int:
    from mscm.config import load_run_config
    from mscm.model import build_model

    cfg = load_run_config("sysu", {"model.pretrained": None})
    model = build_model(cfg.model, SYSU_TRAIN_IDS, cfg.data.height, cfg.data.width)
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="MLflow tracking URI of the finished search")
    parser.add_argument("--search", required=True, help="the search's name")
    args = parser.parse_args()
    from mlflow import MlflowClient

    from mscm.tracking.trials import find_search, trial_runs

    client = MlflowClient(tracking_uri=args.store)
    runs = trial_runs(client, find_search(client, args.search))
    ratios, totals = [], 0
    print("| trial | status | MLflow bytes | weights bytes | ratio |\n|---|---|---|---|---|")
    for run in sorted(runs, key=lambda r: r.info.run_name):
        total, weights = trial_bytes(client, run)
        totals += total
        ratio = total / weights if weights else float("nan")
        if weights:
            ratios.append(ratio)
        print(
            f"| {run.info.run_name} | {run.data.tags.get('mscm.trial_status')} | {total / 1e6:.1f} MB | "
            f"{weights / 1e6:.1f} MB | {ratio:.3f} |"
        )
    print(
        f"search {args.search}: {len(runs)} trials, {totals / 1e6:.1f} MB in MLflow; "
        f"worst ratio {max(ratios):.3f} x the weights"
    )
    paper = paper_weights_bytes()
    worst = max(ratios)
    print(
        f"paper scale (sysu recipe, resnet50, {SYSU_TRAIN_IDS} ids): weights {paper / 1e6:.1f} MB; "
        f"at {worst:.3f} x: {worst * paper / 1e6:.0f} MB per trial, "
        f"{MIMB_TRIALS * worst * paper / 1e9:.1f} GB for the {MIMB_TRIALS}-trial mimb search"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
