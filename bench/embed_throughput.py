"""Embeddings per second on the CPU for the four ways of running the inference path, in one run:
eager PyTorch, TorchScript (``mscm export``), the pt2 program (``torch.export``) and ONNX Runtime
(``mscm export --format onnx``). Each is checked against eager first (max |difference|), then timed on
the same batches; the ratios are to eager.

    python bench/embed_throughput.py                          # the sysu recipe (resnet50, 384x192), batch 16
    python bench/embed_throughput.py --config smoke --batch 64 --repeats 20

Needs the onnx extra (pip install -e '.[onnx]').
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mscm.config import load_run_config  # noqa: E402
from mscm.model import build_model  # noqa: E402
from mscm.model.inference import EmbeddingModel  # noqa: E402
from mscm.registry.export import example_inputs  # noqa: E402
from mscm.registry.onnx_model import OnnxRunner, write_onnx  # noqa: E402

NUM_CLASSES = 395  # SYSU-MM01's training identities (docs/model.md)


def runtimes(module: torch.nn.Module, h: int, w: int, folder: Path) -> dict:
    example = example_inputs(2, h, w)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(folder / "m.ts"))
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, example, dynamic_shapes={"images": {0: batch}, "modality": {0: batch}})
    write_onnx(module, example, folder / "m.onnx", {"height": h, "width": w})
    return {
        "eager": module,
        "torchscript": torch.jit.load(str(folder / "m.ts")),
        "pt2": program.module(),
        "onnxruntime": OnnxRunner(folder / "m.onnx"),
    }


def per_second(run, images: torch.Tensor, modality: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        run(images, modality)  # warm-up: first-call allocations, graph optimisation
        start = time.perf_counter()
        for _ in range(repeats):
            run(images, modality)
    return repeats * len(images) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="sysu", help="run config whose model and input size to time (default sysu)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5, help="timed batches per runtime")
    args = p.parse_args()
    cfg = load_run_config(args.config, {"model.pretrained": None})
    h, w = cfg.data.height, cfg.data.width
    torch.manual_seed(0)
    module = EmbeddingModel(build_model(cfg.model, NUM_CLASSES, h, w), cfg.eval.feature).eval()
    images, modality = example_inputs(args.batch, h, w, seed=1)
    print(f"{args.config}: {cfg.model.backbone} at {h}x{w}, batch {args.batch}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory(prefix="mscm-bench-") as folder:
        print("exporting (TorchScript, pt2, ONNX) ...", flush=True)
        runs = runtimes(module, h, w, Path(folder))
        with torch.inference_mode():
            want = module(images, modality)
        rows = []
        for name, run in tqdm(runs.items(), desc="timing", unit="runtime"):
            with torch.inference_mode():
                diff = float((run(images, modality) - want).abs().max())
            rows.append((name, per_second(run, images, modality, args.repeats), diff))
    eager = rows[0][1]
    print(f"{'runtime':<12} {'embeddings/s':>13} {'x eager':>8} {'max |diff|':>11}")
    for name, rate, diff in rows:
        print(f"{name:<12} {rate:>13.1f} {rate / eager:>8.2f} {diff:>11.1e}")


if __name__ == "__main__":
    main()
