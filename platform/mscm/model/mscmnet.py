"""MSCMNet (arXiv 2311.14395) as the authors' code builds it (docs/model.md, "The network"):

    stems (one per stream) -> layer1 -> layer2 (+NL) -> layer3 (+NL) -> MIMB -> layer4 -> GeM -> BN-neck -> classifier

Only the stems are stream-specific; everything from layer1 on is shared.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..datasets.records import Modality
from .backbone import (
    DEFAULT_NON_LOCAL,
    build_resnet,
    check_non_local_indices,
    make_stems,
    out_channels,
    set_first_stride,
)
from .blocks import BNNeck, NonLocal, gem
from .mimb import MIMB
from .pretrained import load_into, read_resnet_state

# Spatial stride of layer3, where the ALBs work.
LAYER3_STRIDE = 16
STREAM_NAMES = {4: ("V1", "V2", "I1", "I2"), 2: ("V", "I")}
TRUNK = ("layer1", "layer2", "layer3", "layer4")

Which = Literal["bn", "pool", "both"]


class ModelOutput(NamedTuple):
    """Training output: ``features`` = pre-BN GeM features (streams*B x D), fed to QCT; ``logits`` = the
    classifier on the BN feature, fed to CE. Rows follow the views' order ([V1|V2|I1|I2] or [V|I])."""

    features: torch.Tensor
    logits: torch.Tensor


class MSCMNet(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int, height: int, width: int):
        super().__init__()
        if cfg.streams not in STREAM_NAMES:
            raise ValueError(f"model.streams must be 2 or 4, got {cfg.streams}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.streams = cfg.streams
        self.stream_names = STREAM_NAMES[cfg.streams]
        self.input_size = (height, width)
        self.gem_p = float(cfg.gem_p)

        resnet = build_resnet(cfg.backbone)
        self.stems = make_stems(resnet, cfg.streams)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        set_first_stride(self.layer4, cfg.last_stride)

        self.non_local = self._build_non_local(cfg)
        self.mimb: MIMB | None = self._build_mimb(cfg, height, width) if cfg.mimb_scales > 0 else None

        self.feature_dim = out_channels(self.layer4)
        self.bottleneck = BNNeck(self.feature_dim)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)

        if cfg.pretrained:
            state = read_resnet_state(cfg.pretrained, cfg.backbone)
            load_into(self.stems, {name: getattr(self, name) for name in TRUNK}, state)

    def _build_non_local(self, cfg: ModelConfig) -> nn.ModuleDict:
        """Non-local blocks after the chosen blocks of layer2 and layer3, keyed by stage and block index."""
        out = nn.ModuleDict()
        if not cfg.non_local:
            return out
        default2, default3 = DEFAULT_NON_LOCAL[cfg.backbone]
        for name, chosen, default in (
            ("layer2", cfg.non_local_layer2, default2),
            ("layer3", cfg.non_local_layer3, default3),
        ):
            stage = getattr(self, name)
            indices = tuple(default if chosen is None else chosen)
            check_non_local_indices(name, indices, len(stage), cfg.backbone)
            out[name] = nn.ModuleDict({str(i): NonLocal(out_channels(stage)) for i in sorted(indices)})
        return out

    def _build_mimb(self, cfg: ModelConfig, height: int, width: int) -> MIMB:
        if height % LAYER3_STRIDE or width % LAYER3_STRIDE:
            raise ValueError(f"the MIMB needs an input size divisible by {LAYER3_STRIDE}, got {height}x{width}")
        c3 = out_channels(self.layer3)
        if c3 % cfg.alb_reduction:
            raise ValueError(f"model.alb_reduction={cfg.alb_reduction} does not divide layer3's {c3} channels")
        embed = (height // LAYER3_STRIDE) * (width // LAYER3_STRIDE)
        if embed % cfg.alb_heads:
            raise ValueError(
                f"model.alb_heads={cfg.alb_heads} does not divide the ALB embedding "
                f"(H/16)*(W/16) = {embed} for {height}x{width}"
            )
        return MIMB(
            cfg.mimb_scales,
            channels=c3,
            tap_channels={
                "stem": self.stems[0].out_channels,
                "layer1": out_channels(self.layer1),
                "layer2": out_channels(self.layer2),
            },
            tokens=c3 // cfg.alb_reduction,
            embed=embed,
            heads=cfg.alb_heads,
            mlp_ratio=cfg.alb_mlp_ratio,
            value_injection=cfg.alb_value_injection,
        )

    # -- forward paths ------------------------------------------------------------------------
    def _stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        blocks = self.non_local[name] if name in self.non_local else {}
        for i, block in enumerate(getattr(self, name)):
            x = block(x)
            if str(i) in blocks:
                x = blocks[str(i)](x)
        return x

    def _check_size(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images B x 3 x H x W, got shape {tuple(x.shape)}")
        if self.mimb is not None and tuple(x.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise ValueError(
                f"this model's MIMB was built for {h}x{w} inputs (ALB embedding {(h // 16) * (w // 16)}), "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )

    def features_from_stem(self, x: torch.Tensor) -> torch.Tensor:
        """Shared trunk on stem outputs: layer1..layer3 (+NL), MIMB, layer4, GeM -> pre-BN features B x D."""
        taps = {"stem": x}
        x = taps["layer1"] = self.layer1(x)
        x = taps["layer2"] = self._stage("layer2", x)
        x = self._stage("layer3", x)
        if self.mimb is not None:
            x = self.mimb(x, taps)
        return gem(self.layer4(x), self.gem_p)

    def forward(self, *views: torch.Tensor) -> ModelOutput:
        """Training forward: one normalised B x 3 x H x W tensor per stream, in the order of
        ``stream_names``. Each view goes through its own stem; the trunk runs on their concatenation."""
        if len(views) != self.streams:
            raise ValueError(f"expected {self.streams} views {list(self.stream_names)}, got {len(views)}")
        for name, v in zip(self.stream_names, views):
            self._check_size(v)
            if v.shape != views[0].shape:
                raise ValueError(
                    f"view {name} has shape {tuple(v.shape)}, view {self.stream_names[0]} "
                    f"{tuple(views[0].shape)}: all views must match"
                )
        x = torch.cat([stem(v) for stem, v in zip(self.stems, views)])
        features = self.features_from_stem(x)
        return ModelOutput(features, self.classifier(self.bottleneck(features)))

    def modality_stems(self, modality: Modality | str | int) -> list[nn.Module]:
        """The stems of one modality: visible = the first half of the streams, infrared = the second."""
        half = self.streams // 2
        start = 0 if Modality.parse(modality) == Modality.VISIBLE else half
        return list(self.stems[start : start + half])

    def embed(self, images: torch.Tensor, modality: Modality | str | int, which: Which = "bn"):
        """Inference embedding (docs/model.md, "The network"): the image goes through every stem of its modality,
        the stem outputs are averaged, then the shared trunk. Returns the L2-normalised BN feature
        (``"bn"``, the paper's "FC"), the L2-normalised pooled feature (``"pool"``), or ``(pool, bn)``
        (``"both"``). The caller sets eval mode; this method does not change it."""
        if which not in ("bn", "pool", "both"):
            raise ValueError(f"which must be 'bn', 'pool' or 'both', got {which!r}")
        self._check_size(images)
        stems = self.modality_stems(modality)
        x = stems[0](images)
        for stem in stems[1:]:
            x = x + stem(images)
        pool = self.features_from_stem(x / len(stems))
        if which == "pool":
            return F.normalize(pool, dim=1)
        bn = F.normalize(self.bottleneck(pool), dim=1)
        return (F.normalize(pool, dim=1), bn) if which == "both" else bn

    # -- bookkeeping ----------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``head`` = BN-neck weight + classifier (base lr); ``backbone`` = every other trainable parameter
        (lr * backbone_lr_scale), docs/model.md, "The training recipe". The frozen BN-neck bias is in neither."""
        head = [p for p in (*self.bottleneck.parameters(), *self.classifier.parameters()) if p.requires_grad]
        ids = {id(p) for p in head}
        backbone = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return {"head": head, "backbone": backbone}

    def parameter_breakdown(self) -> dict[str, int]:
        """Registered parameters (trainable or not) per part; the values sum to the model's total."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        parts = {"stems": count(self.stems)}
        parts.update({name: count(getattr(self, name)) for name in TRUNK})
        parts["non_local"] = count(self.non_local)
        if self.mimb is not None:
            parts.update({f"alb.{name}": count(alb) for name, alb in self.mimb.albs.items()})
        parts["bn_neck"] = count(self.bottleneck)
        parts["classifier"] = count(self.classifier)
        return parts


def build_model(cfg: ModelConfig, num_classes: int, height: int, width: int) -> MSCMNet:
    """MSCMNet for ``num_classes`` training identities at ``height`` x ``width`` inputs (the ALB embedding
    is fixed by the input size). ``cfg.pretrained`` (a torchvision ResNet state_dict path) initialises all
    stems and the trunk."""
    return MSCMNet(cfg, num_classes, height, width)
