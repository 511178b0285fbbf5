"""What the sampler learns from early-stopped trials: the same ASHA search run with the two feedbacks,
on the same budget, for several search seeds.

- ``complete``: Ray's stock OptunaSearch; a trial ASHA stopped is told to Optuna as COMPLETE with its
  last (early-epoch) value, as if it were a final score.
- ``pruned``: mscm.tune.feedback; such a trial is PRUNED with one intermediate value per epoch, and a
  full trial COMPLETE with its best epoch's value.

For each feedback and search seed it prints the best mAP the search reached (MLflow best/mAP of the
trial the search names) and the epochs it spent, then the mean over the seeds.

    python bench/optuna_feedback.py                      # smoke space, seeds 0 1 2 (about 6 x 9 min here)
    python bench/optuna_feedback.py --seeds 0 1 2 3 4 --trials 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))


def run_one(space_path: Path, feedback: str, seed: int, trials: int | None, out: Path) -> dict:
    from mlflow import MlflowClient

    from mscm.tune.spaces import find_space
    from mscm.tune.tuner import SearchOptions, run_search

    raw = yaml.safe_load(find_space(str(space_path)).read_text())
    raw["sampler"] = {**raw.get("sampler", {}), "seed": seed}
    space = out / f"space-{feedback}-{seed}.yaml"
    space.write_text(yaml.safe_dump(raw, sort_keys=False))
    outcome = run_search(
        SearchOptions(
            space=str(space),
            name=f"feedback-{feedback}-{seed}",
            trials=trials,
            tracking_uri=f"sqlite:///{out / 'mlflow.db'}",
            storage_path=str(out / "ray_results"),
            optuna_url=f"sqlite:///{out / 'optuna.db'}",
            log_models=False,
            baseline=False,
            optuna_feedback=feedback,
        )
    )
    client = MlflowClient(tracking_uri=outcome.tracking_uri, registry_uri=outcome.tracking_uri)
    runs = client.search_runs(
        [client.get_run(outcome.parent_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'",
    )
    epochs = sum(int(r.data.tags.get("epochs_run", 0)) for r in runs)
    return {"best_mAP": outcome.best_metrics.get("mAP", float("nan")), "epochs": epochs}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="smoke")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trials", type=int, help="trials per search (default: the space's)")
    p.add_argument("--feedbacks", nargs="+", default=["complete", "pruned"], choices=["complete", "pruned"])
    args = p.parse_args()
    rows: dict[str, list[dict]] = {f: [] for f in args.feedbacks}
    with tempfile.TemporaryDirectory(prefix="mscm-feedback-") as tmp:
        for seed in args.seeds:
            for feedback in rows:
                rows[feedback].append(run_one(Path(args.space), feedback, seed, args.trials, Path(tmp)))
                r = rows[feedback][-1]
                print(f"seed {seed} {feedback:>8}: best mAP {100 * r['best_mAP']:.2f}%, {r['epochs']} epochs")
    print(f"\n{'feedback':>9} {'best mAP (mean ± sd)':>22} {'epochs (mean)':>14}")
    for feedback, rs in rows.items():
        best = [100 * r["best_mAP"] for r in rs]
        sd = statistics.stdev(best) if len(best) > 1 else 0.0
        epochs = statistics.mean(r["epochs"] for r in rs)
        print(f"{feedback:>9} {statistics.mean(best):>14.2f} ± {sd:<5.2f} {epochs:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
