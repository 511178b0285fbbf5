"""A non-finite step never reaches the weights, and is found without a host read at every step
(mscm.train.finite): the fused optimiser skips it on the device, the watch reports its step later."""

from __future__ import annotations

import pytest
import torch
from train_configs import OVERFLOW, tiny_config

from mscm.config import OptimConfig
from mscm.train.finite import FiniteWatch, NonFiniteLossError, finite_step
from mscm.train.optim import build_optimizer


class TwoGroups(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head, self.body = torch.nn.Linear(3, 2), torch.nn.Linear(2, 3)

    def parameter_groups(self):
        return {"head": list(self.head.parameters()), "backbone": list(self.body.parameters())}


def _grads(model: torch.nn.Module, value: float | None = None, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) if value is None else torch.full_like(p, value)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_a_flagged_step_changes_neither_weights_nor_optimiser_state(name):
    model = TwoGroups()
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.1))
    _grads(model, float("nan"))
    before = [p.detach().clone() for p in model.parameters()]
    state_before = {k: v.clone() for p in model.parameters() for k, v in opt.state[p].items()}
    finite_step(opt, torch.tensor(False))
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    state_after = {k: v for p in model.parameters() for k, v in opt.state[p].items()}
    assert all(torch.equal(state_before[k], state_after[k]) for k in state_before)
    assert not hasattr(opt, "found_inf")  # the attribute lives for one step only


@pytest.mark.parametrize("skip_first", [False, True])
def test_fused_sgd_with_zeroed_momentum_matches_torchs_sgd_even_after_a_skipped_first_step(skip_first):
    """Fused SGD leaves its momentum uninitialised until its first step; the zero buffers the builder
    adds make a skipped first step harmless and keep the updates equal to stock SGD's."""
    cfg = OptimConfig(name="sgd", lr=0.1)
    ours, ref = TwoGroups(), TwoGroups()
    ref.load_state_dict(ours.state_dict())
    opt = build_optimizer(ours, cfg)
    stock = torch.optim.SGD(
        [{"params": ref.parameter_groups()["head"], "lr": cfg.lr}, {"params": ref.parameter_groups()["backbone"]}],
        lr=cfg.lr * cfg.backbone_lr_scale,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )
    if skip_first:
        _grads(ours, float("inf"))
        finite_step(opt, torch.tensor(False))
    for seed in range(3):
        _grads(ours, seed=seed)
        _grads(ref, seed=seed)
        finite_step(opt, torch.tensor(True))
        stock.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def _terms(value: float) -> dict[str, torch.Tensor]:
    return {"total": torch.tensor(value), "ce": torch.tensor(1.5)}


def test_the_watch_reports_the_first_bad_step_at_its_next_check_not_before():
    watch = FiniteWatch(torch.device("cpu"), check_every=3, epoch=4)
    watch.record(0, torch.tensor(True), _terms(2.0))
    watch.record(1, torch.tensor(False), _terms(float("inf")))  # step 2 (1-based) goes bad
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 5, step 2: ce=1\.5, total=inf"):
        watch.record(2, torch.tensor(False), _terms(float("nan")))  # the third step is a check
    quiet = FiniteWatch(torch.device("cpu"), check_every=3, epoch=0)
    for step in range(6):
        quiet.record(step, torch.tensor(True), _terms(1.0))
    quiet.check()  # nothing to report


def test_an_overflowing_loss_stops_the_epoch_and_leaves_the_weights_as_they_were(tmp_path):
    """Every step's loss overflows; with no check before the end of the epoch, every step must still
    be skipped on the device, and the epoch must end with the first step's number."""
    from mscm.train.engine import Engine

    cfg = tiny_config(tmp_path, **{"loss.ce_weight": OVERFLOW, "train.finite_check_every": 1000})
    engine = Engine(cfg)
    before = {k: p.detach().clone() for k, p in engine.module.named_parameters()}
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 1, step 1: .*total=inf"):
        engine.train_epoch()
    for k, p in engine.module.named_parameters():
        assert torch.equal(before[k], p), k
    steps = [s["step"] for s in engine.optimizer.state.values() if "step" in s]
    assert steps and all(float(s) == 0 for s in steps)  # AdamW counted no step


def test_a_checkpoint_from_before_fused_optimisers_resumes_fused(tmp_path):
    """Optimizer.load_state_dict restores each group's ``fused`` flag; a checkpoint written with the
    foreach optimiser (fused=False) must still train, since the skip relies on the fused kernel."""
    from mscm.train.engine import Engine

    engine = Engine(tiny_config(tmp_path, **{"data.iterations_per_epoch": 2}))
    engine.train_epoch()
    state = engine.train_state()
    for group in state["optimizer"]["param_groups"]:
        group["fused"], group["foreach"] = False, None  # as the checkpoints of 6623080 and before
    resumed = Engine(tiny_config(tmp_path, **{"data.iterations_per_epoch": 2}))
    resumed.load_train_state(state, engine.module.state_dict())
    assert all(g["fused"] for g in resumed.optimizer.param_groups)
    assert resumed.train_epoch()["perf/steps"] == 2
