"""The inference path as one module: what is logged to MLflow, exported and used for retrieval.

Input signature (documented in the README):
  images:   uint8 tensor (B, H, W, 3), RGB, already at the model's input size (H, W of the run config)
  modality: int64 tensor (B,), 0 = visible, 1 = infrared
Output: float32 (B, D), L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from ..datasets.records import Modality


class EmbeddingModel(nn.Module):
    def __init__(self, model: nn.Module, feature: str = "bn"):
        super().__init__()
        if feature not in ("bn", "pool", "pool+bn"):
            raise ValueError(f"feature must be 'bn', 'pool' or 'pool+bn', got {feature!r}")
        self.model = model
        self.feature = feature
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)

    def _embed(self, x: torch.Tensor, modality: Modality) -> torch.Tensor:
        if self.feature == "pool+bn":
            pool, bn = self.model.embed(x, modality, which="both")
            # Dot products of this concatenation equal (pool.pool' + bn.bn') / 2: the LLCM fusion's ranking.
            return torch.cat([pool, bn], dim=1) * (0.5**0.5)
        return self.model.embed(x, modality, which=self.feature)

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        # Each sample goes through its own modality's stems; both branches run so the graph has no
        # data-dependent shapes (exportable with torch.export). The stems are a small share of the cost.
        vis = self._embed(x, Modality.VISIBLE)
        ir = self._embed(x, Modality.INFRARED)
        return torch.where(modality.view(-1, 1) == int(Modality.INFRARED), ir, vis)
