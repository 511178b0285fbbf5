"""The inference path as an ONNX file, and ONNX Runtime running it.

Written with ``torch.onnx.export`` (the ``torch.export`` based exporter, which needs ``onnxscript``) at opset
:data:`OPSET`, with a dynamic batch dimension on both inputs. The file's metadata (``metadata_props``)
carries the input size, so :class:`OnnxRunner` needs neither torch's model code nor the run config:
``mscm retrieve --model model.onnx`` ranks with ONNX Runtime alone. The packages are the ``onnx`` extra
(``pip install 'mscm[onnx]'``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import RegistryError

# Opset 18: the exporter's default in torch 2.x and supported by ONNX Runtime 1.14 and later, TensorRT 8.6+
# and OpenVINO 2023+ (https://onnxruntime.ai/docs/reference/compatibility.html).
OPSET = 18
INPUTS = ("images", "modality")
OUTPUT = "embedding"
EXTRA = "pip install 'mscm[onnx]' (onnx, onnxruntime, onnxscript)"


class OnnxError(RegistryError):
    """ONNX export or inference is unavailable or failed."""


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise OnnxError(f"ONNX needs {', '.join(missing)}: {EXTRA}")


def write_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, torch.Tensor], out: Path, meta: dict) -> None:
    """Export ``module`` (an EmbeddingModel) to ``out``, batch dimension dynamic; ``meta`` goes into the
    file's metadata_props (height and width at least)."""
    _require("onnx", "onnxscript")
    import onnx

    batch = torch.export.Dim("batch", min=1, max=65536)
    quiet = logging.getLogger("onnxscript")  # one line per folded Split node otherwise
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.inference_mode(False), warnings.catch_warnings():
            # "The axis name: batch will not be used": both inputs share the one batch dimension, as meant.
            warnings.filterwarnings("ignore", message="# The axis name")
            program = torch.onnx.export(
                module,
                example,
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_shapes={"images": {0: batch}, "modality": {0: batch}},
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
    except Exception as e:
        raise OnnxError(f"ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.save(proto, str(out))


class OnnxRunner:
    """``(images uint8 (B,H,W,3), modality int64 (B,)) -> float32 (B,D)`` through ONNX Runtime on the CPU;
    takes and gives torch tensors, like the PyTorch model it replaces."""

    def __init__(self, path: str | Path, threads: int | None = None):
        _require("onnxruntime")
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own errors: not an ONNX file, a damaged one
            raise OnnxError(f"{path}: ONNX Runtime cannot load it ({type(e).__name__}: {e})") from None
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUTS or "height" not in self.meta or "width" not in self.meta:
            raise OnnxError(f"{path}: not an mscm ONNX model (inputs {names}, metadata {sorted(self.meta)})")
        self.height, self.width = int(self.meta["height"]), int(self.meta["width"])

    def __call__(self, images: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        feeds = {"images": np.ascontiguousarray(images.numpy()), "modality": modality.numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run([OUTPUT], feeds)[0])
