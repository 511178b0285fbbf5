"""``mscm retrieve``: rank a folder of images against a query image with a registered model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrieve", help="rank a gallery folder against a query image; writes CSV, JSON and a PNG grid")
    p.add_argument(
        "--model",
        required=True,
        help="models:/<name>@champion (or another MLflow model URI), a checkpoint folder, or a .onnx file",
    )
    p.add_argument("--query", required=True, help="query image file")
    p.add_argument("--modality", required=True, help="modality of the query: visible or infrared")
    p.add_argument("--gallery", required=True, help="folder of gallery images (searched recursively)")
    p.add_argument("--gallery-modality", help="modality of the gallery images (default: the other one)")
    p.add_argument("--top", type=int, default=10, help="number of matches to keep (default 10)")
    p.add_argument("--out", help="output folder (default: ./retrieval-<query name>)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project store)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry.retrieve import RetrievalError, rank_gallery, write_ranking
    from ..registry.source import ModelSourceError, load_embedder

    try:
        model = load_embedder(args.model, args.tracking_uri)
        ranking = rank_gallery(
            model,
            args.query,
            args.gallery,
            args.modality,
            top=args.top,
            gallery_modality=args.gallery_modality,
            progress=not args.quiet,
        )
    except (RetrievalError, ModelSourceError) as e:
        print(f"mscm retrieve: {e}", file=sys.stderr)
        return 2
    out = write_ranking(ranking, args.out or f"retrieval-{Path(args.query).stem}")
    print(
        f"{ranking.query} ({ranking.query_modality}) against {ranking.gallery_size} {ranking.gallery_modality} "
        f"images in {ranking.gallery}" + (f" ({len(ranking.skipped)} unreadable, skipped)" if ranking.skipped else "")
    )
    for m in ranking.matches:
        print(f"  #{m.rank:<3} {m.score:.4f}  {m.path}")
    print(f"wrote {out['csv']}, {out['json']}, {out['grid']}")
    return 0
