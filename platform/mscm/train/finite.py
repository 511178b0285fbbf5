"""Keeping a non-finite update out of the weights without a host read at every step.

Each step leaves a device-side flag ``ok`` (loss and gradient norm finite, agreed by every DDP rank);
the optimiser is fused and told ``found_inf = not ok``, so a bad step changes neither the weights nor
the optimiser state, on the device. :class:`FiniteWatch` keeps the first bad step and its loss terms
on the device too; the host reads it every ``check_every`` steps and at the end of the epoch, and the
run stops there with the step's number. (A host read makes the CPU wait for the GPU; one per step
keeps the GPU from running ahead of the Python loop.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..errors import MscmError

_NONE = torch.iinfo(torch.int64).max  # "no bad step yet"; ranks agree with a MIN all-reduce


class NonFiniteLossError(MscmError, FloatingPointError):
    """The loss became NaN or infinite; the run cannot continue."""


def agree(flag: torch.Tensor, world_size: int) -> torch.Tensor:
    """``flag`` (0-d bool) and-ed over the DDP ranks: a device-side all-reduce, no host read on NCCL."""
    if world_size > 1 and dist.is_initialized():
        value = flag.to(torch.int32).reshape(1)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return value[0].bool()
    return flag


def finite_step(optimizer: torch.optim.Optimizer, ok: torch.Tensor) -> None:
    """One optimiser step that ``ok`` = False skips on the device (fused optimisers read ``found_inf``,
    the attribute torch.amp.GradScaler sets for them)."""
    optimizer.found_inf = (~ok).float()  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


class FiniteWatch:
    """The epoch's first non-finite step and its loss terms, kept on the device until checked."""

    def __init__(self, device: torch.device, check_every: int, epoch: int):
        self.device, self.check_every, self.epoch = device, check_every, epoch
        self.first_bad = torch.full((), _NONE, dtype=torch.int64, device=device)
        self.keys: list[str] = []
        self.terms: torch.Tensor | None = None

    def record(self, step: int, ok: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Note step ``step``'s flag (device ops only); every ``check_every`` steps, check on the host."""
        if self.terms is None:
            self.keys = sorted(terms)
            self.terms = torch.zeros(len(self.keys), device=self.device)
        first = (self.first_bad == _NONE) & ~ok
        values = torch.stack([terms[k].detach().float() for k in self.keys])
        self.terms = torch.where(first, values, self.terms)
        self.first_bad = torch.where(first, torch.full_like(self.first_bad, step), self.first_bad)
        if (step + 1) % self.check_every == 0:
            self.check()

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` if a step so far was not finite (one host read)."""
        step = int(self.first_bad)
        if step == _NONE:
            return
        assert self.terms is not None
        detail = ", ".join(f"{k}={v:.4g}" for k, v in zip(self.keys, self.terms.tolist()))
        raise NonFiniteLossError(f"non-finite loss at epoch {self.epoch + 1}, step {step + 1}: {detail}")
