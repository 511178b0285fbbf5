"""What a model costs at inference: parameters and single-image latency. Reported by every training run
(``params_m``, ``latency_ms``) so that a multi-objective search can trade mAP against them."""

from __future__ import annotations

import statistics
import time

import torch

from ..datasets.records import Modality
from .mscmnet import MSCMNet


def inference_parameters(model: MSCMNet) -> int:
    """Parameters of the deployed model: everything but the identity classifier, which only training uses
    (its size is the number of training identities, not a property of the architecture)."""
    classifier = {id(p) for p in model.classifier.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in classifier)


@torch.no_grad()
def inference_latency_ms(
    model: MSCMNet,
    height: int,
    width: int,
    *,
    device: torch.device | str = "cpu",
    runs: int = 10,
    warmup: int = 2,
    batch: int = 1,
    modality: Modality = Modality.INFRARED,
    memory_format: torch.memory_format = torch.contiguous_format,
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Median wall time of ``model.embed`` on a batch of ``batch`` images, in ms, in eval mode (the
    model's mode is restored), under autocast when ``autocast_dtype`` is given (as evaluation runs on
    GPUs). The median resists a stray slow run on a shared machine."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    x = torch.randn(batch, 3, height, width, device=device).to(memory_format=memory_format)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    try:
        for i in range(warmup + runs):
            sync()
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                model.embed(x, modality)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(times)
