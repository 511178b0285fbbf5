"""The ResNet pieces of MSCMNet (:mod:`mscm.model.resnet`, torchvision's layout; nothing is downloaded):
per-stream stems and the shared layer1-layer4 trunk (docs/model.md, "The network")."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .resnet import STAGES, BasicBlock, Bottleneck, ResNet, resnet

# Blocks followed by a non-local block when the config says null (docs/model.md, "The network"). ResNet-50 is
# AGW's placement (the last 2 blocks of layer2, the last 3 of layer3). ResNet-18 has only two blocks per
# stage; the analogue used here is the last block of layer2 and of layer3.
DEFAULT_NON_LOCAL: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "resnet50": ((2, 3), (3, 4, 5)),
    "resnet18": ((1,), (1,)),
}


def build_resnet(backbone: str) -> ResNet:
    if backbone not in STAGES:
        raise ValueError(f"unknown backbone {backbone!r} (choose from {sorted(STAGES)})")
    return resnet(backbone)


def out_channels(stage: nn.Sequential) -> int:
    """Output channels of a ResNet stage, read off its last block."""
    block = stage[-1]
    if isinstance(block, Bottleneck):
        return block.bn3.num_features
    if isinstance(block, BasicBlock):
        return block.bn2.num_features
    raise TypeError(f"unsupported ResNet block {type(block).__name__}")


def set_first_stride(stage: nn.Sequential, stride: int) -> None:
    """Set the stride of a stage's first block (its strided 3x3 conv and its downsample conv), without
    dilation, as AGW's ``last_conv_stride`` does."""
    for module in stage[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (stride, stride)


class Stem(nn.Module):
    """conv1 7x7/2, BN, ReLU, maxpool 3/2: the only stream-specific part of the network."""

    def __init__(self, conv1: nn.Conv2d, bn1: nn.BatchNorm2d, maxpool: nn.Module):
        super().__init__()
        self.conv1, self.bn1 = conv1, bn1
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = maxpool

    @property
    def out_channels(self) -> int:
        return self.conv1.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))


def make_stems(resnet: ResNet, count: int) -> nn.ModuleList:
    """``count`` stems shaped like ``resnet``'s, each initialised on its own as torchvision does."""
    stems = nn.ModuleList()
    for _ in range(count):
        conv = copy.deepcopy(resnet.conv1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        stems.append(Stem(conv, copy.deepcopy(resnet.bn1), copy.deepcopy(resnet.maxpool)))
    return stems


def check_non_local_indices(stage_name: str, indices: tuple[int, ...], blocks: int, backbone: str) -> None:
    bad = [i for i in indices if not 0 <= i < blocks]
    if bad:
        raise ValueError(
            f"model.non_local_{stage_name}: block indices {bad} are out of range; {backbone} {stage_name} "
            f"has {blocks} blocks (valid indices 0..{blocks - 1})"
        )
    if len(set(indices)) != len(indices):
        raise ValueError(f"model.non_local_{stage_name}: repeated block index in {list(indices)}")
