"""``mscm synth``: write the synthetic VI-ReID dataset in the layout of SYSU-MM01, RegDB or LLCM."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from ..datasets import dataset_names

    p = sub.add_parser("synth", help="generate a synthetic dataset in a real dataset's on-disk layout")
    p.add_argument("--layout", required=True, choices=dataset_names())
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--identities", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..data import DatasetError, read_dataset
    from ..data.synth import generate_atomic

    try:
        info = generate_atomic(
            args.layout,
            args.out,
            args.identities,
            args.seed,
            args.height,
            args.width,
            progress=not args.quiet,
            overwrite=args.overwrite,
        )
    except (DatasetError, ValueError) as e:
        print(f"mscm synth: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['images']} images of {args.identities} identities in {info['seconds']} s")
    print(read_dataset(args.layout, args.out).summary())
    return 0
