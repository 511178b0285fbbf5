"""One worker's share of an MSCMNet training run, independent of Ray.

``Engine`` owns the model, optimiser, schedule, sampler, augmentations and evaluation of one DDP rank
and exposes epoch-sized steps plus a resumable state. ``mscm.train.worker`` drives it inside Ray Train;
tests drive it directly.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..config import RunConfig
from ..data import build_dataset, drop_skipped, holdout_identities
from ..data.augment import QuadAugment
from ..data.cache import ImageCache
from ..data.loader import build_train_loader
from ..eval.features import eval_amp_dtype
from ..eval.full import EvalRequest, extract_test_features, rank_protocols
from ..eval.result import EvalResult
from ..eval.test_images import TestImages, open_test_images
from ..losses import MSCMLoss
from ..model import build_model
from .determinism import apply_determinism
from .finite import FiniteWatch, NonFiniteLossError, agree, finite_step
from .optim import build_optimizer, build_scheduler, load_optimizer_state

__all__ = ["Engine", "NonFiniteLossError", "PreparedData", "prepare_data", "seed_everything"]


@dataclass
class PreparedData:
    dataset: Any
    train_visible: ImageCache
    train_infrared: ImageCache
    warnings: list[str]


def prepare_data(cfg: RunConfig, *, progress: bool = True) -> PreparedData:
    """Read (or generate) the dataset, hold out validation ids if asked, and open the train caches."""
    dataset = build_dataset(cfg.data, progress=progress)
    if cfg.data.val_identities:
        dataset = holdout_identities(dataset, cfg.data.val_identities, seed=cfg.train.seed)
    vis, ir = (
        ImageCache(
            records,
            cfg.data.height,
            cfg.data.width,
            cfg.data.cache_dir,
            skip_corrupt=cfg.data.skip_corrupt,
            progress=progress,
        )
        for records in (dataset.train_visible, dataset.train_infrared)
    )
    dataset = drop_skipped(dataset, (vis, ir))  # keeps record lists aligned with skip_corrupt caches
    return PreparedData(dataset, vis, ir, list(dataset.warnings))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class LoaderWait:
    """Seconds spent waiting for the next batch, over one pass of a loader."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def over(self, loader):
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.seconds += time.perf_counter() - t0
            yield batch


class Engine:
    def __init__(
        self,
        cfg: RunConfig,
        *,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        wrap_model: Callable[[nn.Module], nn.Module] | None = None,
        progress: bool = False,
    ):
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.last_evaluation: tuple | None = None  # (features, request) of the latest evaluate()
        self.device = torch.device(device)
        self.on_gpu = self.device.type == "cuda"
        apply_determinism(cfg.train)
        seed_everything(cfg.train.seed + rank)
        self.data = prepare_data(cfg, progress=progress and rank == 0)
        ds = self.data.dataset
        self.num_classes = ds.num_classes

        model = build_model(cfg.model, ds.num_classes, cfg.data.height, cfg.data.width).to(self.device)
        self.memory_format = (
            torch.channels_last if (self.on_gpu and cfg.train.channels_last) else torch.contiguous_format
        )
        model = model.to(memory_format=self.memory_format)
        self.model = wrap_model(model) if wrap_model else model
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule)
        self.amp_dtype = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.precision) if self.on_gpu else None
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)
        self.criterion = MSCMLoss(cfg.loss, cfg.model.streams)
        self.augment = QuadAugment(cfg.augment, cfg.model.streams)
        self.loader = build_train_loader(
            self.data.train_visible,
            self.data.train_infrared,
            ds,
            cfg.data,
            rank=rank,
            world_size=world_size,
            seed=cfg.train.seed,
        )
        self.epoch = 0  # epochs completed
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": None, "metrics": {}}
        self.last_eval: dict[str, float] = {}  # the latest evaluation's summary, carried into every report
        self._test_images: TestImages | None = None
        self.first_step_wall: float | None = None  # wall clock of this process's first training step

    @property
    def module(self) -> nn.Module:
        return getattr(self.model, "module", self.model)

    # -- training ---------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """Run one epoch; returns epoch means of the loss terms plus lr, accuracy and throughput."""
        cfg, epoch = self.cfg, self.epoch
        self.model.train()
        self.loader.set_epoch(epoch)
        gen = torch.Generator(device=self.device)
        gen.manual_seed((cfg.train.seed * 1_000_003 + epoch * 1_009 + self.rank) % 2**63)
        sums: dict[str, torch.Tensor] = {}
        correct = torch.zeros((), device=self.device)
        seen = views_seen = 0
        watch = FiniteWatch(self.device, cfg.train.finite_check_every, epoch)
        start = time.perf_counter()
        waited = LoaderWait()
        for step, (vis, ir, labels) in enumerate(waited.over(self.loader)):
            if self.first_step_wall is None:
                self.first_step_wall = time.time()
            terms, logits, targets, ok = self._train_step(vis, ir, labels, gen)
            for k, v in terms.items():  # device sums, read once at the end of the epoch
                sums[k] = sums.get(k, torch.zeros((), device=self.device)) + v.detach().float()
            correct += (logits.detach().argmax(1) == targets).sum()
            seen += 1
            views_seen += targets.numel()
            watch.record(step, ok, terms)
        watch.check()
        if self.on_gpu:
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        lrs = {f"lr/{g.get('name', i)}": g["lr"] for i, g in enumerate(self.optimizer.param_groups)}
        self.scheduler.step()
        self.epoch += 1
        metrics = self._epoch_means(sums, correct, seen, views_seen)
        metrics.update(lrs)
        metrics["perf/epoch_time_s"] = elapsed
        metrics["perf/images_per_s"] = views_seen / elapsed if elapsed > 0 else 0.0  # per worker, trunk images
        metrics["perf/steps"] = seen
        # Time blocked on the data loader: an input-bound run stands out (issue 24).
        metrics["perf/data_wait_ms"] = 1000 * waited.seconds / seen if seen else 0.0
        metrics["perf/data_wait_frac"] = waited.seconds / elapsed if elapsed > 0 else 0.0
        return metrics

    def _train_step(self, vis, ir, labels, gen: torch.Generator):
        """Augment, forward, loss, backward and optimiser step on one batch, with no host read;
        returns (terms, logits, targets, ok), ``ok`` the device flag "this step was finite"."""
        vis = vis.to(self.device, non_blocking=True)
        ir = ir.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        views = [v.contiguous(memory_format=self.memory_format) for v in self.augment(vis, ir, gen)]
        targets = labels.repeat(len(views))
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            out = self.model(*views)
        terms = self.criterion(out, targets)
        return terms, out.logits, targets, self._update(terms["total"])

    def _update(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward and an optimiser step that a non-finite loss or gradient never reaches (skipped on
        the device, see mscm.train.finite); returns the step's finite flag, agreed by every rank."""
        opt, scaler, clip = self.optimizer, self.scaler, self.cfg.train.grad_clip
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        loss_ok = torch.isfinite(loss.detach())
        if scaler.is_enabled():
            # fp16: an overflowing gradient is routine; GradScaler skips that step (on the device for a
            # fused optimiser) and lowers its scale. Only a non-finite loss fails the run.
            if clip:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            scaler.step(opt)
            scaler.update()
            return agree(loss_ok, self.world_size)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = nn.utils.get_total_norm(grads)
        ok = agree(loss_ok & torch.isfinite(norm), self.world_size)
        if clip:
            nn.utils.clip_grads_with_norm_(self.model.parameters(), clip, norm)
        finite_step(opt, ok)
        return ok

    def _epoch_means(
        self, sums: dict[str, torch.Tensor], correct: torch.Tensor, seen: int, views_seen: int
    ) -> dict[str, float]:
        """Loss-term means and training accuracy, averaged over the ranks (one all-reduce)."""
        keys = sorted(sums)
        stats = torch.stack([*(sums[k] for k in keys), correct, torch.tensor(float(views_seen), device=self.device)])
        if self.world_size > 1 and dist.is_initialized():
            dist.all_reduce(stats)
            stats /= self.world_size
        metrics = {f"loss/{k}": float(stats[i]) / max(seen, 1) for i, k in enumerate(keys)}
        metrics["train/accuracy"] = float(stats[len(keys)] / max(float(stats[len(keys) + 1]), 1.0))
        return metrics

    # -- evaluation -------------------------------------------------------------------------
    def test_images(self) -> TestImages:
        """The evaluation images, opened on first use (only rank 0 evaluates)."""
        if self._test_images is None:
            cfg = self.cfg
            self._test_images = open_test_images(
                self.data.dataset,
                cfg.data.height,
                cfg.data.width,
                cache_dir=cfg.data.cache_dir,
                skip_corrupt=cfg.data.skip_corrupt,
            )
        return self._test_images

    def evaluate(self, trials: int | None = None) -> EvalResult:
        """Evaluate the current weights on the configured protocol (rank 0 only, unwrapped model);
        ``trials`` overrides ``eval.trials`` (fewer draws during training)."""
        cfg = self.cfg
        settings = cfg.eval if trials is None else replace(cfg.eval, trials=trials)
        request = EvalRequest(
            settings,
            protocols=(cfg.eval.protocol,),
            split=cfg.data.regdb_trial,
            device=self.device,
            amp_dtype=eval_amp_dtype(cfg.eval, self.device),
        )
        features = extract_test_features(self.module, self.test_images(), request)
        self.last_evaluation = (features, request)  # for the ranked lists drawn beside the checkpoint
        return rank_protocols(features, self.test_images().dataset, request)[cfg.eval.protocol]

    def write_ranked_lists(self, path: Path) -> Path | None:
        """The last evaluation's ranked lists (``eval.ranked_lists`` = K; 0: none) as ``path``."""
        from ..eval.ranked_lists import write_ranked_lists

        if not self.cfg.eval.ranked_lists or self.last_evaluation is None:
            return None
        features, request = self.last_evaluation
        name = self.cfg.eval.protocol
        return write_ranked_lists(features, self.test_images(), request, name, path, k=self.cfg.eval.ranked_lists)

    def update_best(self, score: float, metrics: dict[str, float]) -> bool:
        if score > self.best["score"]:
            self.best = {"score": score, "epoch": self.epoch, "metrics": dict(metrics)}
            return True
        return False

    # -- state ------------------------------------------------------------------------------
    def train_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.loader.state_dict(),
            "best": self.best,
            "last_eval": self.last_eval,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }

    def load_train_state(self, state: dict[str, Any], model_state: dict[str, torch.Tensor]) -> None:
        from ..checkpoint import load_state_strict

        load_state_strict(self.module, model_state, "checkpoint")
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.loader.load_state_dict(state["sampler"])
        self.best = state["best"]
        self.last_eval = dict(state.get("last_eval", {}))
        self.epoch = int(state["epoch"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
