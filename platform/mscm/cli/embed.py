"""``mscm embed``: the embeddings of a folder of images, with their file names and the model, in one .npz."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed every image of a folder into an .npz (paths, embeddings, model)")
    p.add_argument("--model", required=True, help="models:/<name>@<alias>, a checkpoint folder, or a .onnx file")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--modality", required=True, help="visible or infrared")
    p.add_argument("--out", required=True, help="output file, e.g. features.npz")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project store)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry.embed import checked_request, embed_folder
    from ..registry.retrieve import RetrievalError
    from ..registry.source import ModelSourceError, load_embedder

    if args.batch_size < 1:
        print(f"mscm embed: error: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2
    try:
        checked_request(args.modality, args.out)
        model = load_embedder(args.model, args.tracking_uri)
        report = embed_folder(
            model, args.images, args.modality, args.out, batch_size=args.batch_size, progress=not args.quiet
        )
    except (RetrievalError, ModelSourceError) as e:
        print(f"mscm embed: error: {e}", file=sys.stderr)
        return 2
    extra = f" ({len(report.skipped)} unreadable, skipped)" if report.skipped else ""
    print(f"wrote {report.out}: {report.count} embeddings of {report.dim} dimensions{extra}")
    return 0
