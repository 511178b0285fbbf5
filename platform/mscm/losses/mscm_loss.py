"""The training objective: CE on the BN-feature logits + QCT on the pre-BN features
(docs/model.md, "The Quadruple Center Triplet (QCT) loss")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LossConfig
from .qct import qct_loss

if TYPE_CHECKING:  # the loss needs only .features and .logits; no torchvision import for it
    from ..model import ModelOutput


class MSCMLoss(nn.Module):
    """``total = ce_weight * CE(logits) + qct_weight * QCT(features)``; returns every term for logging:
    ``total``, ``ce``, ``qct``, ``qct_cross``, ``qct_intra``, ``qct_neg``."""

    def __init__(self, cfg: LossConfig, streams: int):
        super().__init__()
        self.cfg, self.streams = cfg, streams

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        ce = F.cross_entropy(output.logits.float(), labels, label_smoothing=cfg.label_smoothing)
        qct = qct_loss(output.features, labels, self.streams, margin=cfg.qct_margin, alpha=cfg.qct_alpha)
        return {
            "total": cfg.ce_weight * ce + cfg.qct_weight * qct["total"],
            "ce": ce,
            "qct": qct["total"],
            "qct_cross": qct["cross"],
            "qct_intra": qct["intra"],
            "qct_neg": qct["neg"],
        }
