"""Initialise MSCMNet's stems and trunk from a torchvision ResNet state_dict file (docs/model.md, "The training recipe":
all stems and the trunk start from the same ImageNet ResNet). Nothing is downloaded: the user gives a path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import MscmError
from ..torchfile import load_tensors
from .backbone import build_resnet

TRUNK = ("layer1", "layer2", "layer3", "layer4")
STEM = ("conv1", "bn1")


class PretrainedWeightsError(MscmError, ValueError):
    """A pretrained-weights file that is missing, unreadable or does not fit the configured backbone."""


def _optional(key: str) -> bool:
    # torchvision's published files predate BN's num_batches_tracked buffer.
    return key.endswith("num_batches_tracked")


def read_resnet_state(path: str | Path, backbone: str) -> dict[str, torch.Tensor]:
    """The stem and trunk tensors of a torchvision ``backbone`` state_dict file, checked key by key."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise PretrainedWeightsError(f"model.pretrained: {file}: file not found")
    try:
        state = load_tensors(file)
    except ValueError as e:
        raise PretrainedWeightsError(f"model.pretrained: {file}: {e}") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise PretrainedWeightsError(
            f"model.pretrained: {file}: expected a state_dict (a mapping of names to tensors), "
            f"got {type(state).__name__}"
        )
    reference = {k: v for k, v in build_resnet(backbone).state_dict().items() if k.split(".")[0] in TRUNK + STEM}
    wanted = {k: v for k, v in state.items() if k.split(".")[0] in TRUNK + STEM}
    problems = []
    missing = [k for k in reference if k not in wanted and not _optional(k)]
    if missing:
        problems.append(f"missing keys {missing[:5]}" + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    unexpected = [k for k in wanted if k not in reference]
    if unexpected:
        problems.append(
            f"unexpected keys {unexpected[:5]}" + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
        )
    shapes = [
        f"{k}: file {tuple(wanted[k].shape)} vs {backbone} {tuple(v.shape)}"
        for k, v in reference.items()
        if k in wanted and wanted[k].shape != v.shape
    ]
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:5]))
    if problems:
        raise PretrainedWeightsError(
            f"model.pretrained: {file} does not hold torchvision {backbone} weights: " + "; ".join(problems)
        )
    return wanted


def _sub(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_into(stems: nn.ModuleList, trunk: Mapping[str, nn.Module], state: Mapping[str, torch.Tensor]) -> None:
    """Copy conv1/bn1 into every stem and layer1-4 into the trunk (``strict=False`` only for the optional
    num_batches_tracked buffers; every other key was checked by :func:`read_resnet_state`)."""
    for stem in stems:
        for name in STEM:
            getattr(stem, name).load_state_dict(_sub(state, f"{name}."), strict=False)
    for name, module in trunk.items():
        module.load_state_dict(_sub(state, f"{name}."), strict=False)
