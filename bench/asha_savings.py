"""What ASHA early stopping saves: the same search run twice, with ASHA and without early stopping, and
for each the training compute spent, the wall time, the best metric reached, and the per-trial
overhead (trial start to the first training step).

Both searches draw the same trial configurations: the space's sampler is replaced by Optuna's random
sampler with a fixed seed, whose draws do not depend on results (TPE's would, so the two searches
would explore different points and the comparison would mix two effects).

    python bench/asha_savings.py                          # smoke space, 6 trials x 4 epochs, 1 worker each
    python bench/asha_savings.py --trials 8 --epochs 6 --iterations 20
    python bench/asha_savings.py --space mimb --trials 20 --epochs 30 --workers 1 --gpus 1   # on GPUs

Figures come from the searches' own MLflow runs (per-epoch perf/* metrics, epochs_run tags).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))


def space_file(args: argparse.Namespace, scheduler: str, out: Path) -> Path:
    from mscm.tune.spaces import find_space

    raw = yaml.safe_load(find_space(args.space).read_text())
    raw.setdefault("overrides", {})
    if args.iterations:
        raw["overrides"]["data.iterations_per_epoch"] = args.iterations
    raw["overrides"]["schedule.milestones"] = []
    raw["budget"] = {
        **raw.get("budget", {}),
        "trials": args.trials,
        "epochs": args.epochs,
        "scheduler": scheduler,
        "grace_period": args.grace,
        "reduction_factor": args.reduction,
        "max_concurrent_trials": 1,
    }
    if scheduler == "none":
        for key in ("grace_period", "reduction_factor"):
            raw["budget"].pop(key)
    raw["resources"] = {"workers": args.workers, "cpus_per_worker": args.cpus, "gpus_per_worker": args.gpus}
    raw["sampler"] = {"name": "random", "seed": args.seed}
    path = out / f"space-{scheduler}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def measure(outcome, wall_s: float) -> dict:
    """Per-trial epochs, training + evaluation seconds, start-to-first-step overhead, best metric."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=outcome.tracking_uri, registry_uri=outcome.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'"
    )
    epochs, compute, overheads, best = 0, 0.0, [], float("-inf")
    for run in runs:
        rid = run.info.run_id
        train = client.get_metric_history(rid, "perf/epoch_time_s")
        evals = client.get_metric_history(rid, "perf/eval_time_s")
        epochs += int(run.data.tags.get("epochs_run", len(train)))
        compute += sum(m.value for m in train) + sum(m.value for m in evals)
        first = client.get_metric_history(rid, "perf/first_step_wall")
        if first:
            overheads.append(first[0].value - run.info.start_time / 1000)
        maps = client.get_metric_history(rid, "mAP")
        if maps:
            best = max(best, max(m.value for m in maps))
    return {
        "trials": len(runs),
        "epochs": epochs,
        "compute_s": compute,
        "wall_s": wall_s,
        "overheads": overheads,
        "best_mAP": best,
        "stopped": sum(r.data.tags.get("mscm.trial_status") == "stopped_early" for r in runs),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="smoke", help="search space name or YAML path (default: smoke)")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial (ASHA max_t)")
    p.add_argument("--grace", type=int, default=1, help="ASHA grace period")
    p.add_argument("--reduction", type=int, default=2, help="ASHA reduction factor")
    p.add_argument("--iterations", type=int, default=10, help="steps per epoch (0: the space's)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--cpus", type=float, default=2)
    p.add_argument("--gpus", type=float, default=0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from mscm.tune.tuner import SearchOptions, run_search

    figures = {}
    with tempfile.TemporaryDirectory(prefix="mscm-asha-bench-") as tmp:
        for scheduler in ("asha", "none"):
            root = Path(tmp, scheduler)
            root.mkdir()
            start = time.perf_counter()
            outcome = run_search(
                SearchOptions(
                    space=str(space_file(args, scheduler, root)),
                    name=f"asha-bench-{scheduler}",
                    tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                    storage_path=str(root / "ray_results"),
                    optuna_url=f"sqlite:///{root / 'optuna.db'}",
                    log_models=False,
                )
            )
            figures[scheduler] = measure(outcome, time.perf_counter() - start)

    a, n = figures["asha"], figures["none"]
    print(
        f"\n{args.space}: {args.trials} trials x {args.epochs} epochs, random sampler seed {args.seed} "
        f"(same configurations in both), ASHA grace {args.grace}, reduction {args.reduction}"
    )
    print(f"{'':<22}{'ASHA':>12}{'no stopping':>14}{'ASHA / none':>13}")
    for label, key, fmt in (
        ("trials stopped early", "stopped", "{:.0f}"),
        ("epochs trained", "epochs", "{:.0f}"),
        ("train + eval time (s)", "compute_s", "{:.1f}"),
        ("search wall time (s)", "wall_s", "{:.1f}"),
        ("best mAP", "best_mAP", "{:.4f}"),
    ):
        ratio = f"{a[key] / n[key]:.2f}" if n[key] else "-"  # no ratio against zero (no stops without ASHA)
        print(f"{label:<22}{fmt.format(a[key]):>12}{fmt.format(n[key]):>14}{ratio:>13}")
    for name, f in figures.items():
        o = f["overheads"]
        if o:
            print(
                f"trial start -> first step ({name}): mean {sum(o) / len(o):.1f} s, min {min(o):.1f}, max {max(o):.1f} "
                f"over {len(o)} trials"
            )
    saved = 1 - a["compute_s"] / n["compute_s"] if n["compute_s"] else float("nan")
    print(f"ASHA saved {100 * saved:.0f}% of the training compute; best mAP {a['best_mAP']:.4f} vs {n['best_mAP']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
