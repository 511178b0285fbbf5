"""What a search leaves in Ray's storage per trial, before and after an ended trial's checkpoints shrink
(issue 24, ``mscm.tracking.ray_storage``).

    python bench/checkpoint_bytes.py                 # 2 trials x 3 epochs, with and without logged models

Two small searches on the test recipe (resnet18 at 64x32), one logging each trial's model to MLflow and
one with ``--no-models``. Per trial it prints what Ray held when the trial ended (what is left plus what
the prune freed, from the run's ``mscm.ray_checkpoints`` tag), what is left, and the ratio of what is
left to the weights of one checkpoint. Then it projects the 40-trial ``mimb`` search at paper scale
(172 MB of fp32 weights) from the measured ratios. Everything lives in a temporary MSCM_HOME.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "platform"), str(REPO / "tests")]

PAPER_WEIGHTS_MB = 171.7  # fp32 weights of the sysu recipe (docs/benchmarks.md, "MLflow storage per trial")
PAPER_TRIALS = 40  # search_spaces/mimb.yaml's budget


def _search(folder: Path, trials: int, epochs: int, log_models: bool) -> list[tuple[str, int, int]]:
    """(trial, bytes Ray held at its end, bytes left) per trial."""
    from mlflow import MlflowClient
    from train_configs import one_knob_space

    from mscm.tracking.contract import RAY_CHECKPOINTS_TAG, TRIAL_TAG
    from mscm.tracking.ray_storage import folder_bytes
    from mscm.tune.trial_storage import train_run_dir
    from mscm.tune.tuner import SearchOptions, run_search

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    storage = str(folder / "ray_results")
    outcome = run_search(
        SearchOptions(
            space=one_knob_space(folder / "space.yaml", epochs=epochs, trials=trials, max_concurrent_trials=1),
            name="bytes",
            tracking_uri=uri,
            storage_path=storage,
            optuna_url=f"sqlite:///{folder / 'optuna.db'}",
            baseline=False,
            log_models=log_models,
        )
    )
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_run(outcome.parent_run_id).info.experiment_id
    rows = []
    for r in client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'"):
        left = folder_bytes(train_run_dir(storage, r.data.tags[TRIAL_TAG]))
        freed = int(re.search(r"(\d+) bytes freed", r.data.tags[RAY_CHECKPOINTS_TAG]).group(1))
        rows.append((r.info.run_name.split()[0], left + freed, left))
    return sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from mscm.raycluster import init_ray

    with tempfile.TemporaryDirectory(prefix="mscm-bytes-") as tmp:
        os.environ["MSCM_HOME"] = tmp
        init_ray(num_cpus=2)
        ratios, weights = {}, 0
        for log_models in (False, True):  # the kept weights of the first give one checkpoint's weights
            folder = Path(tmp) / ("models" if log_models else "no-models")
            folder.mkdir()
            label = "models in MLflow" if log_models else "--no-models"
            rows = _search(folder, args.trials, args.epochs, log_models)
            weights = weights or max(p.stat().st_size for p in folder.rglob("model.pt"))
            for trial, before, after in rows:
                print(
                    f"{label:17s} {trial}: at its end {before / 1e6:7.1f} MB ({before / weights:.2f}x the weights), "
                    f"after {after / 1e6:6.2f} MB ({after / weights:.3f}x), weights {weights / 1e6:.1f} MB"
                )
            ratios[label] = (
                sum(r[1] for r in rows) / len(rows) / weights,
                sum(r[2] for r in rows) / len(rows) / weights,
            )
        for label, (before, after) in ratios.items():
            scale = PAPER_WEIGHTS_MB * PAPER_TRIALS / 1000
            print(
                f"projected, {PAPER_TRIALS} trials x {PAPER_WEIGHTS_MB} MB of weights, {label}: "
                f"{before * scale:.1f} GB before, {after * scale:.2f} GB after"
            )


if __name__ == "__main__":
    main()
