"""``mscm model-summary``: per-part parameter counts of the configured MSCMNet (and optionally one forward)."""

from __future__ import annotations

import argparse

from ._common import add_config_args, resolve_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model-summary", help="print the model's parameter counts per part")
    add_config_args(p, default="sysu")
    p.add_argument(
        "--num-classes",
        type=int,
        help="classifier size (default: the training identities of the config's dataset, SYSU-MM01: 395)",
    )
    p.add_argument(
        "--forward",
        action="store_true",
        help="also run one training forward (2 images per stream, at the config's input size)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    import torch

    from ..datasets import get_dataset
    from ..model import build_model

    cfg = resolve_config(args)
    classes = args.num_classes or get_dataset(cfg.data.dataset).train_classes
    # The summary describes the architecture; pretrained weights would not change a count.
    model_cfg = dataclasses.replace(cfg.model, pretrained=None)
    h, w = cfg.data.height, cfg.data.width
    model = build_model(model_cfg, classes, h, w)
    parts = model.parameter_breakdown()
    total = sum(parts.values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"MSCMNet {model_cfg.backbone}, {model_cfg.streams} streams, MIMB scales {model_cfg.mimb_scales}, "
        f"non-local {'on' if model_cfg.non_local else 'off'}, {classes} classes, input {h}x{w}"
    )
    width = max(len(k) for k in parts)
    for name, n in parts.items():
        print(f"  {name:<{width}}  {n / 1e6:9.4f} M  {100 * n / total:5.1f}%")
    print(f"  {'total':<{width}}  {total / 1e6:9.4f} M  ({total:,} parameters, {trainable:,} trainable)")
    if args.forward:
        views = [torch.randn(2, 3, h, w) for _ in range(model.streams)]
        start = time.perf_counter()
        with torch.no_grad():
            out = model(*views)
        print(
            f"forward of {model.streams} x 2 images: features {tuple(out.features.shape)}, "
            f"logits {tuple(out.logits.shape)}, {time.perf_counter() - start:.2f} s"
        )
    return 0
