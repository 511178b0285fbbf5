"""``mscm evaluate``: a checkpoint on the full test protocol of a dataset, printed as a paper-style table."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from ..datasets import DATASETS, PROTOCOL_SPECS

    settings = "; ".join(f"{d.title}: {', '.join(p.title for p in d.protocols)}" for d in DATASETS.values())
    p = sub.add_parser(
        "evaluate",
        help=f"evaluate a checkpoint on a dataset's test protocols ({', '.join(d.title for d in DATASETS.values())})",
        description=f"Evaluate a checkpoint on the full test protocol of a dataset ({settings}; "
        "definitions in docs/protocols.md). Prints R1/R5/R10/R20/mAP/mINP in % (mean ± std over trials).",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        action="append",
        metavar="DIR",
        help="checkpoint directory (as training writes it); repeat for RegDB, one per split",
    )
    p.add_argument(
        "--dataset",
        metavar="ROOT",
        help="dataset folder in its original layout (default: the checkpoint's data.root; "
        "null there = the synthetic data it was trained on)",
    )
    p.add_argument("--layout", choices=list(DATASETS), help="layout of --dataset (default: the checkpoint's dataset)")
    p.add_argument(
        "--protocol",
        action="append",
        choices=list(PROTOCOL_SPECS),
        help="protocol to run, repeatable (default: every protocol of the dataset)",
    )
    p.add_argument("--trials", type=int, help="random gallery draws for SYSU/LLCM (default: eval.trials)")
    p.add_argument("--gallery-mode", choices=["single", "multi"], help="SYSU/LLCM gallery (default: eval.gallery_mode)")
    p.add_argument("--feature", choices=["bn", "pool", "pool+bn"], help="ranking feature (default: eval.feature)")
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="horizontal-flip test-time augmentation on every protocol, or on none (default: eval.flip; "
        "null there = as the authors' scripts, LLCM VIS->IR only)",
    )
    p.add_argument(
        "--regdb-split",
        type=int,
        metavar="N",
        help="RegDB split 1..10 to test on (default: the checkpoint's data.regdb_trial)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        help="feature extraction autocast on CUDA (default: eval.precision of the checkpoint, fp32)",
    )
    p.add_argument("--cache-dir", help="decoded-image cache (default: data.cache_dir of the checkpoint)")
    p.add_argument("--json", metavar="OUT", help="write the results (every trial) as JSON")
    p.add_argument("--cmc-plot", metavar="OUT.png", help="write the CMC curves as a PNG")
    _add_extras(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def _add_extras(p: argparse.ArgumentParser) -> None:
    """Re-ranking and ranked lists: extra results and pictures beside the plain evaluation."""
    p.add_argument(
        "--rerank",
        action="store_true",
        default=None,
        help="also rank with k-reciprocal re-ranking (eval.rerank_k1/k2/lambda; results named rerank/<protocol>)",
    )
    p.add_argument(
        "--ranked-lists",
        type=int,
        default=0,
        metavar="K",
        help="write a PNG grid per protocol: lowest-AP queries first, then a sample, each with its top-K",
    )
    p.add_argument("--ranked-dir", metavar="DIR", help="folder for --ranked-lists (required with it)")


def run(args: argparse.Namespace) -> int:
    from ..eval.checkpoint_eval import EvalOptions, evaluate_checkpoints

    if args.ranked_lists < 0 or (args.ranked_lists and not args.ranked_dir):
        print("mscm evaluate: error: --ranked-lists K needs K >= 1 and --ranked-dir DIR", file=sys.stderr)
        return 2
    options = EvalOptions(
        dataset_root=args.dataset,
        layout=args.layout,
        protocols=tuple(args.protocol or ()),
        trials=args.trials,
        flip=args.flip,
        feature=args.feature,
        gallery_mode=args.gallery_mode,
        split=args.regdb_split,
        device=args.device,
        precision=args.precision,
        cache_dir=args.cache_dir,
        rerank=args.rerank,
        ranked_lists=args.ranked_lists,
        ranked_dir=args.ranked_dir,
        progress=not args.quiet,
    )
    report = evaluate_checkpoints(args.checkpoint, options)
    d = report.dataset
    split = f", RegDB split {d['regdb_split']}" if "regdb_split" in d else ""
    print(
        f"{d['layout']} at {d['root']} ({d['split']} split{split}): "
        f"{d['test_visible']} visible + {d['test_infrared']} infrared test images"
    )
    print(f"checkpoint{'s' * (len(report.checkpoints) > 1)}: {', '.join(report.checkpoints)}")
    print()
    print(report.table())
    if args.json:
        print(f"\nwrote {report.save_json(args.json)}")
    if args.cmc_plot:
        print(f"wrote {report.plot_cmc(args.cmc_plot)}")
    return 0
