"""Where a trial's time goes: one small search, timed from MLflow's own run and metric timestamps.

    python bench/trial_overhead.py                       # 1 trial, 2 epochs, 1 worker
    python bench/trial_overhead.py --trials 2 --workers 2

Prints, per trial: the start-up (its MLflow run's start to its first epoch's metric, minus that epoch's
training and evaluation), the epochs, and the end (its last metric to the run's end: the model logged on
the Tune driver). Everything lives in a temporary MSCM_HOME that is removed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "platform"), str(REPO / "tests")]


def _space(folder: Path, trials: int, epochs: int, workers: int) -> Path:
    from train_configs import TINY

    overrides = {k: v for k, v in TINY.items() if not k.startswith(("schedule.", "tracking."))}
    overrides.update({"schedule.warmup_epochs": 0, "schedule.milestones": [], "eval.trials": 1})
    space = {
        "base": "smoke",
        "overrides": overrides,
        "parameters": {"loss.qct_margin": {"type": "float", "low": 0.3, "high": 1.2}},
        "objective": {"metric": "mAP", "direction": "maximize"},
        "budget": {"trials": trials, "epochs": epochs, "scheduler": "none", "max_concurrent_trials": 1},
        "resources": {"workers": workers, "cpus_per_worker": 1, "gpus_per_worker": 0},
        "sampler": {"name": "random", "seed": 0},
    }
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _report(uri: str, outcome, t0: float) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(outcome.parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'"
    )
    p_start, p_end = parent.info.start_time / 1000 - t0, parent.info.end_time / 1000 - t0
    print(f"parent run: starts {p_start:.1f} s after Ray, ends {p_end:.1f} s")
    for r in sorted(runs, key=lambda r: r.info.run_name):
        start, end = r.info.start_time / 1000, r.info.end_time / 1000
        history = sorted(client.get_metric_history(r.info.run_id, "eval/mAP"), key=lambda h: h.step)
        first, last = history[0].timestamp / 1000, history[-1].timestamp / 1000
        epoch = r.data.metrics.get("perf/epoch_time_s", 0.0) + r.data.metrics.get("perf/eval_time_s", 0.0)
        name = r.info.run_name.split()[0]
        print(
            f"{name}: start-up {first - start - epoch:.1f} s, epochs {last - first + epoch:.1f} s ({len(history)}), "
            f"end (model logging) {end - last:.1f} s, whole {end - start:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mscm-overhead-") as tmp:
        folder = Path(tmp)
        os.environ["MSCM_HOME"] = tmp
        from mscm.raycluster import init_ray
        from mscm.tune.tuner import SearchOptions, run_search

        start = time.time()
        init_ray(num_cpus=2)
        t0 = time.time()
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        options = SearchOptions(
            space=str(_space(folder, args.trials, args.epochs, args.workers)),
            name="overhead",
            tracking_uri=uri,
            storage_path=str(folder / "ray_results"),
            optuna_url=f"sqlite:///{folder / 'optuna.db'}",
            baseline=False,
        )
        outcome = run_search(options)
        print(f"Ray start {t0 - start:.1f} s, search {time.time() - t0:.1f} s")
        _report(uri, outcome, t0)


if __name__ == "__main__":
    main()
