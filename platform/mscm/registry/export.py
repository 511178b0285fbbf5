"""Export the inference path (:class:`~mscm.model.inference.EmbeddingModel`) to a file a serving stack
loads without mscm: TorchScript (``torch.jit.load``) or ONNX (:mod:`mscm.registry.onnx_model`, opset 18,
dynamic batch; the ``onnx`` extra). The export is checked against the PyTorch model on fresh inputs (other
batch sizes than the traced one, both modalities; ONNX through ONNX Runtime) before it is kept.

The registered MLflow model itself needs mscm installed (its python_function loader is mscm's).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import RegistryError
from .onnx_model import OPSET
from .source import checkpoint_for

FORMATS = ("torchscript", "onnx")
CHECK_BATCHES = (1, 3)  # traced with 2: a shape baked into the trace shows up here
DEFAULT_TOLERANCE = 1e-4  # max |difference| of L2-normalised float32 embeddings


class ExportError(RegistryError):
    """The export failed, or gives other embeddings than the PyTorch model."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    height: int
    width: int
    dim: int
    max_abs_diff: float
    checked_batches: tuple[int, ...]

    def message(self) -> str:
        return (
            f"wrote {self.format} {self.path}: images uint8 (B,{self.height},{self.width},3) RGB + modality int64 (B,) "
            f"-> float32 (B,{self.dim}); max |difference| to the PyTorch model {self.max_abs_diff:.2e} "
            f"on batches of {', '.join(map(str, self.checked_batches))}"
            + (f" (ONNX opset {OPSET}, ONNX Runtime)" if self.format == "onnx" else "")
        )


def example_inputs(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8, generator=g)
    modality = torch.arange(batch, dtype=torch.int64) % 2  # both modalities in every batch of 2+
    return images, modality


def max_difference(
    exported, reference: torch.nn.Module, height: int, width: int, batches: tuple[int, ...] = CHECK_BATCHES
) -> float:
    worst = 0.0
    with torch.inference_mode():
        for i, b in enumerate(batches):
            images, modality = example_inputs(b, height, width, seed=100 + i)
            worst = max(worst, float((exported(images, modality) - reference(images, modality)).abs().max()))
    return worst


def _write(fmt: str, module: torch.nn.Module, h: int, w: int, out: Path, meta: dict):
    """Write ``out`` and return it loaded back (a callable on torch tensors) for the parity check."""
    if fmt == "onnx":
        from .onnx_model import OnnxError, OnnxRunner, write_onnx

        try:
            write_onnx(module, example_inputs(2, h, w), out, {"height": h, "width": w, **meta})
            return OnnxRunner(out)
        except OnnxError as e:
            raise ExportError(str(e)) from None
    with torch.inference_mode(), warnings.catch_warnings():
        # The model's input-size checks are Python conditions on shapes; tracing fixes them for this
        # input size, which is the model's only valid one (the check below covers batch sizes).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example_inputs(2, h, w), check_trace=False)
    traced.save(str(out))
    return torch.jit.load(str(out), map_location="cpu")


def export_model(
    source: str,
    out: str | Path,
    *,
    fmt: str = "torchscript",
    tracking_uri: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Export the model of ``source`` (a checkpoint folder or ``models:/<name>@<alias>``) to ``out``."""
    from ..tracking.model_logging import embedding_model_from_checkpoint

    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (available: {', '.join(FORMATS)})")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="mscm-export-") as scratch:
        module, cfg, _ = embedding_model_from_checkpoint(checkpoint_for(source, scratch, tracking_uri))
    h, w = cfg.data.height, cfg.data.width
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        exported = _write(fmt, module, h, w, out, {"source": source, "feature": cfg.eval.feature})
        diff = max_difference(exported, module, h, w)
        if not diff <= tolerance:
            raise ExportError(
                f"{out}: the exported model differs from the PyTorch model by {diff:.3g} "
                f"(tolerance {tolerance:g}); the file was removed"
            )
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    with torch.inference_mode():
        dim = int(module(*example_inputs(1, h, w)).shape[1])
    return ExportReport(out, fmt, h, w, dim, diff, CHECK_BATCHES)
