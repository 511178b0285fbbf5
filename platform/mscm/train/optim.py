"""Optimiser with the paper's two learning-rate groups, and its per-epoch warm-up + step schedule."""

from __future__ import annotations

from bisect import bisect_right

import torch
from torch import nn

from ..config import OptimConfig, ScheduleConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Head (BN-neck + classifier) at ``lr``; everything else at ``lr * backbone_lr_scale``.

    docs/model.md, "The training recipe": base lr 0.1 for the BN-neck and classifier, 0.01 for stems,
    trunk, NL and ALBs; SGD with Nesterov momentum 0.9 and weight decay 5e-4 on all groups.
    """
    groups = getattr(model, "module", model).parameter_groups()
    param_groups = [
        {"params": groups["head"], "lr": cfg.lr, "name": "head"},
        {"params": groups["backbone"], "lr": cfg.lr * cfg.backbone_lr_scale, "name": "backbone"},
    ]
    # Fused: one kernel per step, and a step the device flags non-finite is skipped there
    # (mscm.train.finite), with no host read.
    if cfg.name == "sgd":
        opt = torch.optim.SGD(
            param_groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
            fused=True,
        )
        if cfg.momentum > 0:
            # Zero buffers from the start: fused SGD allocates them uninitialised on its first step and
            # takes them as filled afterwards, so a skipped first step would leave garbage momentum.
            # With dampening 0, buf = 0.9 * 0 + g equals the first step's buf = g.
            for group in opt.param_groups:
                for p in group["params"]:
                    opt.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return opt
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` keeping the kernels :func:`build_optimizer` chose: torch
    restores each group's ``fused``/``foreach`` from the state, and a checkpoint from before the fused
    optimisers says fused=False, which would break the device-side skip of mscm.train.finite."""
    kernels = [(g.get("fused"), g.get("foreach")) for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, (fused, foreach) in zip(optimizer.param_groups, kernels):
        group["fused"], group["foreach"] = fused, foreach


def lr_factor(epoch: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base learning rates at ``epoch`` (0-based).

    Linear warm-up from ``warmup_start_factor`` over ``warmup_epochs`` (factor = s*(1 - e/W) + e/W), then
    ``gamma`` at each milestone (bisect_right, as the authors' LRSchedulerWithWarmup).
    """
    if epoch < cfg.warmup_epochs:
        t = epoch / cfg.warmup_epochs
        return cfg.warmup_start_factor * (1 - t) + t
    return cfg.gamma ** bisect_right(list(cfg.milestones), epoch)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per epoch, after the epoch's iterations."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg))
