"""Test-time feature extraction: batched, no autograd, optional flip TTA and CUDA autocast.

The model contract (mscm.model): ``model.embed(images, modality, which="bn"|"pool"|"both")`` takes a
normalised float batch B x 3 x H x W and returns L2-normalised features ((pool, bn) for "both").
Image sources are sequences of H x W x 3 uint8 arrays (ImageCache, a list, an N x H x W x 3 array).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..config.schema import EvalConfig
from ..data.imagenet import normalize_uint8
from ..datasets.records import Modality

Which = Literal["bn", "pool", "both"]
_WHICH = ("bn", "pool", "both")


class IndexedImages:
    """A view of ``images`` restricted to ``indices`` (protocol candidates), without copying."""

    def __init__(self, images: Sequence[np.ndarray], indices: Sequence[int]):
        self.images, self.indices = images, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[int(self.indices[i])]


def _batch(images: Sequence[np.ndarray], lo: int, hi: int) -> torch.Tensor:
    arrays = [np.asarray(images[i]) for i in range(lo, hi)]
    first = arrays[0]
    for i, a in zip(range(lo, hi), arrays):
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"image {i}: expected H x W x 3 uint8, got {a.dtype} {a.shape}")
        if a.shape != first.shape:
            raise ValueError(
                f"image {i} is {a.shape[1]}x{a.shape[0]} (WxH) but image {lo} is {first.shape[1]}x{first.shape[0]}: "
                "test images must be resized to the model input size before extraction"
            )
    return torch.from_numpy(np.stack(arrays))


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None or device.type != "cuda":
        return contextlib.nullcontext()  # autocast only on CUDA; CPU runs float32
    if amp_dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"amp_dtype must be torch.bfloat16 or torch.float16, got {amp_dtype}")
    return torch.autocast(device_type="cuda", dtype=amp_dtype)


def extract_features(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    modality: Modality | str | int,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    which: Which = "bn",
    flip: bool = False,
    flip_normalize: bool = False,
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Features of every image, float32 on the CPU: N x D, or (pool, bn) for ``which="both"``.

    The model runs in eval mode (its previous mode is restored) under ``torch.inference_mode``.
    uint8 batches go to the device as uint8 and are normalised there. ``flip``: the feature of the
    image plus that of its horizontal mirror, a plain sum as in the authors' testD.py (its norm
    then weighs the gallery entry), or L2-normalised again with ``flip_normalize``.
    ``amp_dtype`` (bf16/fp16) enables autocast on CUDA and is ignored on CPU.
    """
    from tqdm.auto import tqdm

    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    modality = Modality.parse(modality)
    device = torch.device(device)
    n = len(images)
    parts: list[list[torch.Tensor]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _autocast(device, amp_dtype):
            for lo in tqdm(
                range(0, n, batch_size),
                desc=desc or f"features ({modality.name.lower()})",
                unit="batch",
                disable=not progress,
                leave=False,
            ):
                x = normalize_uint8(_batch(images, lo, min(n, lo + batch_size)).to(device, non_blocking=True))
                feats = _embed(model, x, modality, which)
                if flip:
                    mirrored = _embed(model, torch.flip(x, dims=[3]), modality, which)
                    feats = [a.float() + b.float() for a, b in zip(feats, mirrored)]
                    if flip_normalize:
                        feats = [F.normalize(f, dim=1) for f in feats]
                parts.append([f.float().cpu() for f in feats])
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("no images to extract features from")
    out = [torch.cat(col) for col in zip(*parts)]
    return (out[0], out[1]) if which == "both" else out[0]


def _embed(model: torch.nn.Module, x: torch.Tensor, modality: Modality, which: Which) -> list[torch.Tensor]:
    out = model.embed(x, modality, which=which)
    feats = list(out) if which == "both" else [out]
    for f in feats:
        if f.ndim != 2 or f.shape[0] != x.shape[0]:
            raise ValueError(f"model.embed returned shape {tuple(f.shape)} for a batch of {x.shape[0]}")
    return feats


def fuse_for_similarity(parts: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """Concatenate ``sqrt(w_k) * part_k`` so that a dot product of fused features is
    sum_k w_k (q_k . g_k): ranking fused features by -(q . g) ranks by the weighted sum of the
    parts' similarities. LLCM's pool+bn fusion is weights (1, 1); its second line, (0.1, 0.9).
    """
    if not parts:
        raise ValueError("nothing to fuse")
    weights = [1.0] * len(parts) if weights is None else list(weights)
    if len(weights) != len(parts) or any(w < 0 for w in weights):
        raise ValueError(f"need one non-negative weight per part, got {weights} for {len(parts)} parts")
    return torch.cat([p if w == 1.0 else p * float(np.sqrt(w)) for p, w in zip(parts, weights)], dim=1)


def eval_amp_dtype(eval_cfg: EvalConfig, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of feature extraction: EvalConfig.precision on CUDA, None (fp32) elsewhere."""
    if torch.device(device).type != "cuda":
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[eval_cfg.precision]


def features_for_eval(
    model: torch.nn.Module,
    images: Sequence[np.ndarray],
    modality: Modality | str | int,
    eval_cfg: EvalConfig,
    *,
    flip: bool = False,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The ranking feature EvalConfig.feature asks for: "bn", "pool", or "pool+bn" (LLCM fusion:
    the sum of the pool and bn cosine similarities), with ``flip`` (the protocol's, see
    mscm.eval.full.protocol_flip), EvalConfig.flip_normalize and batch_size."""
    which: Which = "both" if eval_cfg.feature == "pool+bn" else eval_cfg.feature  # type: ignore[assignment]
    out = extract_features(
        model,
        images,
        modality,
        batch_size=eval_cfg.batch_size,
        device=device,
        which=which,
        flip=flip,
        flip_normalize=eval_cfg.flip_normalize,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    return fuse_for_similarity(out) if which == "both" else out  # type: ignore[arg-type]
