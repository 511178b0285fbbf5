"""The authors' released MSCMNet weights in mscm's layout.

The authors' ``train.py`` saves ``{"net": embed_net.state_dict(), "cmc", "mAP", "mINP", "epoch"}``. Their
``embed_net`` (public repository Hua-XC/MSCMNet, ``model.py``) names its parts as below; mscm's network is the
same computation with other names (docs/model.md, "Names in the authors' code"):

==========================================================  ======================================
authors' key                                                 mscm key
==========================================================  ======================================
``visible_module.visible.{conv1,bn1}.*``                     ``stems.0.{conv1,bn1}.*`` (V1)
``visible_moduleA.visible.{conv1,bn1}.*``                    ``stems.1.*`` (V2)
``thermal_module.thermal.{conv1,bn1}.*``                     ``stems.2.*`` (I1)
``thermal_moduleA.thermal.{conv1,bn1}.*``                    ``stems.3.*`` (I2)
``base_resnet.base.layer{1..4}.*``                           ``layer{1..4}.*``
``NL_2.{0,1}.*`` / ``NL_3.{0,1,2}.*``                        ``non_local.layer2.{2,3}.*`` / ``layer3.{3,4,5}``
``layerATT{0,1,2,3}.*``                                      ``mimb.albs.{stem,layer1,layer2,self}.*``
``ATT_narrow`` / ``ATT_broad``                               ``narrow`` / ``broad``
``ATT_narrow1`` (ALBs 0, 1) / ``ATT_narrow2`` (ALB 2)        ``project``
``bottleneck.*``, ``classifier.weight``                      the same
==========================================================  ======================================

Dropped, because the authors' forward pass never reads them: the rest of the four stems' whole ResNet-50s
(``layer1``-``layer4``, ``fc``), the trunk ResNet's own ``conv1``, ``bn1`` and ``fc``, ``local_conv`` and
``feat_bn2d``, ``ATT_narrow2`` of ALBs 0 and 1, ``ATT_narrow1`` of ALB 2, and ``ATT_narrow1``,
``ATT_narrow2`` and ``ln_1o`` of ALB 3 (the self-attention ALB has no shallow input). Any other key is an
error that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

STEMS = {  # the authors' stem module, its inner ResNet attribute, mscm's stream index ([V1|V2|I1|I2])
    "visible_module": ("visible", 0),
    "visible_moduleA": ("visible", 1),
    "thermal_module": ("thermal", 2),
    "thermal_moduleA": ("thermal", 3),
}
NON_LOCAL = {"NL_2": ("layer2", (2, 3)), "NL_3": ("layer3", (3, 4, 5))}  # the blocks they follow
ALBS = ("stem", "layer1", "layer2", "self")  # layerATT0..3
PROJECTION = {0: "ATT_narrow1", 1: "ATT_narrow1", 2: "ATT_narrow2"}  # the one each shallow ALB uses
UNUSED_WHOLE = ("local_conv.", "feat_bn2d.")
ALB_RENAMES = {"ATT_narrow.": "narrow.", "ATT_broad.": "broad."}


class AuthorsKeyError(ValueError):
    """A key of the authors' state dict that maps to nothing mscm knows."""


@dataclass
class Converted:
    state_dict: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)  # unused keys left out
    origin: dict[str, str] = field(default_factory=dict)  # mscm key -> the authors' key it came from


def _stem(key: str) -> str | None:
    module, rest = key.split(".", 1)
    inner, index = STEMS[module]
    if not rest.startswith(inner + "."):
        raise AuthorsKeyError(key)
    rest = rest[len(inner) + 1 :]
    return f"stems.{index}.{rest}" if rest.startswith(("conv1.", "bn1.")) else None


def _trunk(key: str) -> str | None:
    rest = key[len("base_resnet.base.") :]
    return rest if re.match(r"layer[1-4]\.", rest) else None  # its own conv1/bn1/fc are never used


def _non_local(key: str) -> str:
    module, index, rest = key.split(".", 2)
    layer, blocks = NON_LOCAL[module]
    if not index.isdigit() or int(index) >= len(blocks):
        raise AuthorsKeyError(key)
    return f"non_local.{layer}.{blocks[int(index)]}.{rest}"


def _alb(key: str) -> str | None:
    module, rest = key.split(".", 1)
    n = int(module[len("layerATT") :])
    if rest.startswith(("ATT_narrow1.", "ATT_narrow2.")):
        used = PROJECTION.get(n) == rest.split(".")[0]
        return f"mimb.albs.{ALBS[n]}.project.{rest.split('.', 1)[1]}" if used else None
    if n == 3 and rest.startswith("ln_1o."):
        return None
    for old, new in ALB_RENAMES.items():
        if rest.startswith(old):
            rest = new + rest[len(old) :]
    return f"mimb.albs.{ALBS[n]}.{rest}"


def mscm_key(key: str) -> str | None:
    """mscm's name for one key of the authors' state dict, ``None`` for a key their network never uses;
    :class:`AuthorsKeyError` for a key of no known part."""
    head = key.split(".", 1)[0]
    if head in STEMS:
        return _stem(key)
    if key.startswith("base_resnet.base."):
        return _trunk(key)
    if head in NON_LOCAL:
        return _non_local(key)
    if re.fullmatch(r"layerATT[0-3]", head):
        return _alb(key)
    if key.startswith(("bottleneck.", "classifier.")):
        return key
    if key.startswith(UNUSED_WHOLE):
        return None
    raise AuthorsKeyError(key)


def convert(state: dict[str, torch.Tensor]) -> Converted:
    """The authors' state dict (``module.`` prefixes of DataParallel removed) in mscm's names."""
    out = Converted({})
    for key, tensor in state.items():
        bare = key[len("module.") :] if key.startswith("module.") else key
        new = mscm_key(bare)
        if new is None:
            out.dropped.append(bare)
        else:
            out.state_dict[new] = tensor
            out.origin[new] = bare
    return out


def dropped_summary(dropped: list[str]) -> list[str]:
    """The dropped keys grouped by part, e.g. ``visible_module.visible.layer1: 72 keys``."""
    groups: dict[str, int] = {}
    for key in dropped:
        parts = key.split(".")
        depth = 3 if parts[0] in STEMS or parts[0] == "base_resnet" else 2 if parts[0].startswith("layerATT") else 1
        groups[".".join(parts[:depth])] = groups.get(".".join(parts[:depth]), 0) + 1
    return [f"{name}: {n} key{'s' if n != 1 else ''}" for name, n in groups.items()]
