"""What Ray Train costs a training run: time from ``TorchTrainer.fit()`` to the first training step, and
the per-epoch checkpoint + report time as a share of the epoch.

The run is the real one (mscm.train: TorchTrainer, gloo DDP, the smoke recipe on synthetic data); the
workers stamp the wall clock when their loop starts and at their first step, and report how long
saving the checkpoint and ``ray.train.report`` took for the previous epoch (perf/* metrics).

    python bench/ray_overhead.py                                  # 1 worker, 3 epochs of 60 steps (~1 min each here)
    python bench/ray_overhead.py --workers 2 --iterations 30      # DDP over 2 workers
    python bench/ray_overhead.py --config sysu --set data.root=/data/SYSU-MM01 --gpu   # on a GPU machine

Target (issue 5): checkpoint + report under 10% of an epoch for epochs of a minute or more.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from mscm.cli._common import parse_overrides  # noqa: E402
from mscm.config import load_run_config  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="smoke", help="recipe name or YAML path (default: smoke)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--iterations", type=int, default=60, help="steps per epoch")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--gpu", action="store_true", help="one GPU per worker (nccl, bf16)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    args = p.parse_args()

    import ray

    from mscm.raycluster import init_ray
    from mscm.train.trainer import build_trainer, raise_if_failed

    with tempfile.TemporaryDirectory(prefix="mscm-ray-overhead-") as tmp:
        values = {
            "schedule.epochs": args.epochs,
            "schedule.warmup_epochs": 0,
            "schedule.milestones": [],
            "data.iterations_per_epoch": args.iterations,
            "eval.trials": 1,
            "train.num_workers": args.workers,
            "train.use_gpu": args.gpu,
            "train.checkpoints_to_keep": args.epochs,  # every epoch's metrics come back with the result
            "train.storage_path": str(Path(tmp, "ray_results")),
            "tracking.system_metrics": False,
        }
        values.update(parse_overrides(args.set))
        cfg = load_run_config(args.config, values)
        init_ray(None)
        trainer = build_trainer(cfg, name="ray-overhead")
        fit_start = time.time()
        result = trainer.fit()
        fit_s = time.time() - fit_start
        raise_if_failed(result)
        rows = sorted((m for _, m in result.best_checkpoints or []), key=lambda m: m["epoch"])
        ray.shutdown()

    if not rows:
        print("no reports came back", file=sys.stderr)
        return 1
    first = rows[0]
    to_loop = first["perf/loop_start_wall"] - fit_start
    to_step = first["perf/first_step_wall"] - fit_start
    print(
        f"\n{cfg.name}: {cfg.model.backbone} at {cfg.data.height}x{cfg.data.width}, {args.workers} worker(s), "
        f"{args.iterations} steps/epoch, {args.epochs} epochs"
    )
    print(
        f"fit() -> worker loop start     {to_loop:7.2f} s   "
        "(Ray: controller, placement group, worker actors, process group)"
    )
    print(
        f"fit() -> first training step   {to_step:7.2f} s   (+ data cache, model, DDP wrap: {to_step - to_loop:.2f} s)"
    )
    print(f"{'epoch':>5} {'train s':>8} {'eval s':>7} {'ckpt+report s':>14} {'share of epoch':>15}")
    shares = []
    for i, row in enumerate(rows):
        # Row i+1 carries the checkpoint + report time of epoch i (it is measured after epoch i's report).
        report_s = rows[i + 1].get("perf/last_report_s") if i + 1 < len(rows) else None
        train_s, eval_s = row["perf/epoch_time_s"], row.get("perf/eval_time_s", float("nan"))
        share = report_s / train_s if report_s is not None else None
        if share is not None:
            shares.append(share)
        print(
            f"{int(row['epoch']):>5} {train_s:8.2f} {eval_s:7.2f} "
            f"{report_s if report_s is not None else float('nan'):14.3f} "
            f"{(100 * share if share is not None else float('nan')):14.2f}%"
        )
    epochs_s = sum(r["perf/epoch_time_s"] + r.get("perf/eval_time_s", 0.0) for r in rows)
    print(
        f"fit() total {fit_s:.1f} s; epochs (train + eval) {epochs_s:.1f} s; "
        f"everything else {fit_s - epochs_s:.1f} s ({100 * (fit_s - epochs_s) / fit_s:.1f}% of fit)"
    )
    if shares:
        print(f"checkpoint + report: mean {100 * sum(shares) / len(shares):.2f}% of an epoch (target < 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
