"""Optimiser groups and the warm-up + step schedule of the authors' recipe (docs/model.md, "The training recipe")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mscm.config import OptimConfig, ScheduleConfig
from mscm.train.optim import build_optimizer, build_scheduler, lr_factor


class TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2, bias=False)

    def parameter_groups(self):
        return {"head": list(self.head.parameters()), "backbone": list(self.trunk.parameters())}


def test_backbone_lr_follows_the_papers_table():
    # docs/model.md, "The training recipe": backbone lr 0.001 -> 0.01 (epochs 10-24), 0.001 (25-89),
    # 1e-4 (90-119), 1e-5 (120-149)
    cfg = ScheduleConfig()
    backbone = lambda e: 0.01 * lr_factor(e, cfg)  # noqa: E731
    assert backbone(0) == pytest.approx(0.001)
    assert backbone(5) == pytest.approx(0.01 * (0.1 * 0.5 + 0.5))
    assert backbone(10) == pytest.approx(0.01)
    assert backbone(24) == pytest.approx(0.01)
    assert backbone(25) == pytest.approx(0.001)
    assert backbone(90) == pytest.approx(1e-4)
    assert backbone(120) == pytest.approx(1e-5)
    assert backbone(149) == pytest.approx(1e-5)


def test_no_warmup():
    cfg = ScheduleConfig(warmup_epochs=0, milestones=(2,))
    assert [lr_factor(e, cfg) for e in range(4)] == pytest.approx([1, 1, 0.1, 0.1])


def test_two_groups_and_scheduler_steps_per_epoch():
    model = TwoPart()
    opt = build_optimizer(model, OptimConfig())
    assert [g["name"] for g in opt.param_groups] == ["head", "backbone"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 5e-4
    sched = build_scheduler(opt, ScheduleConfig(warmup_epochs=2, milestones=(3,)))
    seen = []
    for _ in range(4):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx([0.01, 0.001])
    assert seen[1] == pytest.approx([0.055, 0.0055])
    assert seen[2] == pytest.approx([0.1, 0.01])
    assert seen[3] == pytest.approx([0.01, 0.001])


def test_adamw_option():
    opt = build_optimizer(TwoPart(), OptimConfig(name="adamw", lr=1e-3))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-4)
