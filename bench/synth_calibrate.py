"""Is the synthetic dataset learnable but not trivial? Scores on its test protocol (mscm.eval) of:

1. random features (the chance level of the protocol),
2. an untrained MSCMNet with a ResNet-18 trunk (random init, the paper's 4 streams, MIMB at 128x64),
3. optionally the same network after ``--epochs`` short CPU epochs of the real training engine
   (mscm.train.engine: identity sampler, quadruple-stream augmentations, CE + QCT, SGD).

    PYTHONPATH=platform python bench/synth_calibrate.py --layout sysu --identities 100
    PYTHONPATH=platform python bench/synth_calibrate.py --layout sysu --identities 100 --epochs 4
    PYTHONPATH=platform python bench/synth_calibrate.py --realistic   # the generator's default style

The data uses the smoke recipe's synthetic style (``data.synthetic`` in configs/smoke.yaml) unless
``--realistic`` asks for the generator's defaults (mscm.data.synth.Style()).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from mscm.config import load_run_config
from mscm.config.schema import RunConfig
from mscm.data import read_dataset
from mscm.data.synth import Style, ensure_synthetic
from mscm.datasets import dataset_names, get_dataset
from mscm.eval import (
    EvalRequest,
    EvalResult,
    candidates,
    evaluate_protocol,
    evaluate_protocols,
    get_protocol,
    open_test_images,
)
from mscm.model import build_model

HEIGHT, WIDTH = 128, 64


def line(name: str, result: EvalResult) -> str:
    """Means (± std over trials) in percent."""
    m = {k: 100 * v for k, v in result.mean.items()}
    s = {k: 100 * v for k, v in result.std.items()}
    return (
        f"{name:<28} R1 {m['rank1']:5.1f} ± {s['rank1']:4.1f}  R10 {m['rank10']:5.1f}  "
        f"mAP {m['mAP']:5.1f} ± {s['mAP']:4.1f}  mINP {m['mINP']:5.1f}"
    )


def config(layout: str, root: Path, protocol: str, trials: int, cache_dir: Path, epochs: int) -> RunConfig:
    """The shipped CPU smoke recipe (resnet18 at 128x64) pointed at this dataset."""
    return load_run_config(
        "smoke",
        {
            "data.dataset": layout,
            "data.root": str(root),
            "data.cache_dir": str(cache_dir),
            "data.identities_per_batch": 6,
            "data.instances_per_identity": 4,
            "data.iterations_per_epoch": None,
            "eval.protocol": protocol,
            "eval.trials": trials,
            "schedule.epochs": max(epochs, 1),
            "schedule.warmup_epochs": min(1, epochs),
            "schedule.milestones": [],
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", default="sysu", choices=dataset_names())
    ap.add_argument("--protocol", default=None, help="default: the layout's first protocol")
    ap.add_argument("--identities", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=0, help="short training epochs after the untrained score")
    ap.add_argument("--realistic", action="store_true", help="the generator's default (hard) style")
    ap.add_argument("--root", default=None, help="existing synthetic dataset (default: generate in a temp dir)")
    args = ap.parse_args()
    protocol = args.protocol or get_dataset(args.layout).protocol_names[0]
    if not get_protocol(protocol).drawn_gallery:
        args.trials = 1  # RegDB ranks its whole gallery: every trial would be the same
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="mscm-calibrate-"))
    try:
        run(args, protocol, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, protocol: str, tmp: Path) -> None:
    root = Path(args.root) if args.root else tmp / "data"
    t = time.perf_counter()
    s = load_run_config("smoke").data.synthetic
    style = Style() if args.realistic else Style(s.ir_coupling, s.clutter, s.variation)
    ensure_synthetic(args.layout, args.identities, args.seed, HEIGHT, WIDTH, style=style, root=root, progress=False)
    print(f"dataset ready in {time.perf_counter() - t:.1f} s at {root} ({style})")
    ds = read_dataset(args.layout, root)
    print(ds.summary())
    cfg = config(args.layout, root, protocol, args.trials, tmp / "cache", args.epochs)
    images = open_test_images(ds, HEIGHT, WIDTH, cache_dir=cfg.data.cache_dir)
    pool = candidates(get_protocol(protocol), ds)
    print(
        f"protocol {protocol}: {len(pool.query)} queries, {len(pool.gallery)} gallery candidates, {args.trials} trials"
    )

    gen = torch.Generator().manual_seed(0)
    rand = evaluate_protocol(
        protocol,
        ds,
        torch.randn(len(pool.query), 64, generator=gen),
        torch.randn(len(pool.gallery), 64, generator=gen),
        trials=args.trials,
    )
    print(line("random features (chance)", rand))

    model = build_model(cfg.model, ds.num_classes, HEIGHT, WIDTH).eval()
    untrained = evaluate_protocols(model, images, EvalRequest(cfg.eval, protocols=(protocol,)))[protocol]
    print(line("untrained MSCMNet-resnet18", untrained))

    if args.epochs:
        from mscm.train.engine import Engine

        engine = Engine(cfg, device="cpu")
        for _ in range(args.epochs):
            t = time.perf_counter()
            stats = engine.train_epoch()
            print(
                f"  epoch {engine.epoch}: {stats['perf/steps']} steps in {time.perf_counter() - t:.0f} s, "
                f"loss {stats['loss/total']:.3f}, train acc {stats['train/accuracy']:.2f}"
            )
        engine.module.eval()
        print(line(f"after {args.epochs} epochs", engine.evaluate(trials=args.trials)))


if __name__ == "__main__":
    main()
