"""``mscm export``: write the inference path of a registered model or checkpoint as TorchScript or ONNX."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model's inference path (TorchScript or ONNX), checked against PyTorch")
    p.add_argument(
        "--model", required=True, help="models:/<name>@<alias>, models:/<name>/<version>, or a checkpoint folder"
    )
    p.add_argument("--out", required=True, help="output file, e.g. model.ts or model.onnx")
    p.add_argument(
        "--format",
        default="torchscript",
        choices=["torchscript", "onnx"],
        help="torchscript (torch.jit.load), or onnx (opset 18, dynamic batch; needs the onnx extra)",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project store)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry.export import ExportError, export_model
    from ..registry.source import ModelSourceError

    try:
        report = export_model(args.model, args.out, fmt=args.format, tracking_uri=args.tracking_uri)
    except (ExportError, ModelSourceError) as e:
        print(f"mscm export: {e}", file=sys.stderr)
        return 2
    print(report.message())
    return 0
