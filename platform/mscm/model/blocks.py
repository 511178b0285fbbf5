"""Building blocks of MSCMNet: AGW non-local block, GeM pooling, BN-neck, and the fp32 LayerNorm /
QuickGELU pieces of the ALB (docs/model.md, "The network")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NonLocal(nn.Module):
    """AGW's dot-product non-local block (docs/model.md, "The network").

    ``f = theta(x)^T phi(x) / N`` over the N positions (no softmax), ``y = f g(x)``,
    ``z = W(y) + x`` with ``W`` = 1x1 conv + BN whose gamma and beta start at zero, so the block
    starts as the identity. Inter-channels C/2.
    """

    def __init__(self, channels: int):
        super().__init__()
        inter = channels // 2
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.W = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2)  # B x C' x N
        phi = self.phi(x).flatten(2)
        g = self.g(x).flatten(2)
        n = theta.shape[-1]
        # Without a softmax the product is associative: theta^T (phi g^T) / N equals (theta^T phi / N) g^T
        # but costs O(N C'^2) instead of O(N^2 C') (N = 1152 positions at layer2 for 384x192).
        context = torch.bmm(phi, g.transpose(1, 2)) / n  # B x C' x C'
        y = torch.bmm(context.transpose(1, 2), theta)  # B x C' x N, y[:, c, i] = sum_j f_ij g_cj
        return self.W(y.reshape(b, -1, h, w)) + x


def gem(x: torch.Tensor, p: float) -> torch.Tensor:
    """Generalised-mean pooling with a fixed p: ``(mean(x^p) + 1e-12)^(1/p)`` over the spatial map, in fp32
    (the authors cast to float before pooling). Input B x C x H x W, output B x C."""
    x = x.float().flatten(2)
    return (x.pow(p).mean(dim=-1) + 1e-12).pow(1.0 / p)


class BNNeck(nn.BatchNorm1d):
    """AGW's BN-neck: BatchNorm1d with a frozen zero bias and weight ~ N(1, 0.01)."""

    def __init__(self, dim: int):
        super().__init__(dim)
        nn.init.normal_(self.weight, 1.0, 0.01)
        nn.init.zeros_(self.bias)
        self.bias.requires_grad_(False)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back to the input dtype (CLIP's LayerNorm, used by the ALB)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)
