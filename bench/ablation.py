"""Ablations of MSCMNet on synthetic data, same budget each: the full model, MIMB off (0 scales), two
streams instead of four (one stem per modality), and CE only (no QCT). Prints R1/mAP side by side,
with the untrained model as the floor.

Each variant trains with the real training engine (mscm.train.engine: identity sampler, device-side
quadruple-stream augmentations, CE + QCT, the recipe's optimiser and schedule) in this process, from
the same seed, then runs the recipe's evaluation protocol (mean over random gallery draws).

    python bench/ablation.py                               # smoke recipe, 32 ids, 6 epochs x 40 steps, seed 0
    python bench/ablation.py --seeds 0 1 2 --epochs 10     # mean ± std over seeds
    python bench/ablation.py --config sysu --set data.root=/data/SYSU-MM01 --device cuda --epochs 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from mscm.cli._common import parse_overrides  # noqa: E402
from mscm.config import load_run_config  # noqa: E402

VARIANTS: dict[str, dict] = {
    "MSCMNet (full)": {},
    "MIMB off": {"model.mimb_scales": 0},
    "2 streams": {"model.streams": 2},
    "CE only (no QCT)": {"loss.qct_weight": 0.0},
}


def train_and_evaluate(values: dict, epochs: int, device: str, untrained: bool = False) -> dict[str, float]:
    from tqdm import tqdm

    from mscm.train.engine import Engine

    cfg = load_run_config(values.pop("_config"), values)
    engine = Engine(cfg, device=device)
    if not untrained:
        for _ in tqdm(range(epochs), desc="epochs", leave=False):
            metrics = engine.train_epoch()
        if not all(v == v for v in metrics.values()):
            raise FloatingPointError(f"non-finite epoch metrics: {metrics}")
    return engine.evaluate().mean


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="smoke")
    p.add_argument("--identities", type=int, default=32, help="synthetic identities (ignored with data.root)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--iterations", type=int, default=40, help="steps per epoch")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    base = {
        "_config": args.config,
        "data.synthetic.identities": args.identities,
        "data.iterations_per_epoch": args.iterations,
        "schedule.epochs": args.epochs,
        "schedule.milestones": [max(1, args.epochs - 2)],
        "schedule.warmup_epochs": 1,
        "train.use_gpu": args.device.startswith("cuda"),
    }
    base.update(parse_overrides(args.set))
    rows: dict[str, list[dict[str, float]]] = {}
    start = time.perf_counter()
    for seed in args.seeds:
        runs = [("untrained", {}, True)] + [(name, VARIANTS[name], False) for name in args.variants]
        for name, overrides, untrained in runs:
            t = time.perf_counter()
            result = train_and_evaluate({**base, **overrides, "train.seed": seed}, args.epochs, args.device, untrained)
            rows.setdefault(name, []).append(result)
            print(
                f"seed {seed} {name:<18} R1 {100 * result['rank1']:5.1f}  mAP {100 * result['mAP']:5.1f}  "
                f"({time.perf_counter() - t:.0f} s)",
                flush=True,
            )

    def cell(name: str, key: str) -> str:
        values = [100 * r[key] for r in rows[name]]
        if len(values) == 1:
            return f"{values[0]:5.1f}"
        return f"{statistics.mean(values):5.1f} ± {statistics.stdev(values):4.1f}"

    print(
        f"\n{args.config}: {args.epochs} epochs x {args.iterations} steps, seeds {args.seeds}, "
        f"{time.perf_counter() - start:.0f} s in all"
    )
    print("| variant | R1 (%) | mAP (%) | mINP (%) |\n|---|---|---|---|")
    for name in rows:
        print(f"| {name} | {cell(name, 'rank1')} | {cell(name, 'mAP')} | {cell(name, 'mINP')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
