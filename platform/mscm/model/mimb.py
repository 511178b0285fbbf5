"""MIMB: a chain of ALBs (the authors' ``layerATT``) between layer3 and layer4 (docs/model.md, "MIMB and ALB").

Tokens are the (reduced) channels and the embedding is the flattened layer3 map, (H/16)*(W/16) values
(288 at 384x192). A cross-scale ALB takes query and key from a shallower tap projected to that map and
the value from the deep feature; the last ALB attends over the deep feature alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import LayerNorm32, QuickGELU

# Taps from shallow to deep, and each one's spatial stride relative to layer3's stride 16.
TAPS: tuple[str, ...] = ("stem", "layer1", "layer2")
TAP_FACTOR = {"stem": 4, "layer1": 4, "layer2": 2}


def _projection(in_channels: int, out_channels: int, factor: int) -> nn.Conv2d:
    """ATT_narrow1 (k=6, s=4, p=2) for stride-4 taps, ATT_narrow2 (k=4, s=2, p=1) for the stride-8 tap:
    both map an H/4 (resp. H/8) map exactly onto H/16 when H is a multiple of 16."""
    if factor == 4:
        return nn.Conv2d(in_channels, out_channels, kernel_size=6, stride=4, padding=2)
    if factor == 2:
        return nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
    raise ValueError(f"no ALB projection for a stride factor of {factor}")


class ALB(nn.Module):
    """One ALB. Authors' names: narrow = ATT_narrow, broad = ATT_broad, project = ATT_narrow1/2,
    ln_1 / ln_1o / ln_2, attn, mlp (c_fc, gelu, c_proj)."""

    def __init__(
        self,
        channels: int,
        tokens: int,
        embed: int,
        heads: int,
        mlp_ratio: float,
        value_injection: float,
        tap_channels: int | None = None,
        tap_factor: int | None = None,
    ):
        super().__init__()
        if embed % heads:
            raise ValueError(f"alb_heads={heads} does not divide the ALB embedding {embed}")
        self.tokens, self.embed, self.value_injection = tokens, embed, value_injection
        self.narrow = nn.Conv2d(channels, tokens, 1)
        self.broad = nn.Conv2d(tokens, channels, 1)
        self.cross = tap_channels is not None
        if self.cross:
            # Only the projection this ALB uses is built (the authors build both in every block).
            self.project = _projection(tap_channels, tokens, tap_factor)
            self.ln_1o = LayerNorm32(embed)
        self.ln_1 = LayerNorm32(embed)
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.ln_2 = LayerNorm32(embed)
        hidden = int(round(embed * mlp_ratio))
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(embed, hidden))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, embed))

    def forward(self, x: torch.Tensor, tap: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        v = self.ln_1(self.narrow(x).flatten(2))  # B x tokens x (h*w)
        if self.cross:
            q = self.ln_1o(self.project(tap).flatten(2))
            v = v + self.value_injection * q
            v = v + self.attn(q, q, v, need_weights=False)[0]
        else:
            v = v + self.attn(v, v, v, need_weights=False)[0]
        v = v + self.mlp(self.ln_2(v))
        # Back to the deep channels; no BN/ReLU and no skip from x (docs/model.md, "MIMB and ALB").
        return self.broad(v.reshape(b, self.tokens, h, w))


class MIMB(nn.Module):
    """``scales`` ALBs: the deepest ``scales - 1`` taps of (stem, layer1, layer2), then the self ALB.

    scales = 4 is the paper; 0 is not built (the model skips the MIMB)."""

    def __init__(
        self,
        scales: int,
        channels: int,
        tap_channels: dict[str, int],
        tokens: int,
        embed: int,
        heads: int,
        mlp_ratio: float,
        value_injection: float,
    ):
        super().__init__()
        if not 1 <= scales <= len(TAPS) + 1:
            raise ValueError(f"mimb_scales must be in 1..{len(TAPS) + 1} for a built MIMB, got {scales}")
        self.taps: tuple[str, ...] = TAPS[len(TAPS) - (scales - 1) :]
        common = dict(
            channels=channels,
            tokens=tokens,
            embed=embed,
            heads=heads,
            mlp_ratio=mlp_ratio,
            value_injection=value_injection,
        )
        self.albs = nn.ModuleDict()
        for name in self.taps:
            self.albs[name] = ALB(**common, tap_channels=tap_channels[name], tap_factor=TAP_FACTOR[name])
        self.albs["self"] = ALB(**common)

    def forward(self, x: torch.Tensor, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        # No outer residual: layer4 sees only the last ALB's output (docs/model.md, "MIMB and ALB").
        for name in self.taps:
            x = self.albs[name](x, taps[name])
        return self.albs["self"](x)
