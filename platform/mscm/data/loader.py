"""The training loader: per step ``(visible_u8 [B,H,W,3], infrared_u8 [B,H,W,3], labels [B])`` with
B = P*K, read from the decoded-image caches by a torch DataLoader (``loader_workers`` processes).
Augmentation stays out of it: :class:`~mscm.data.augment.QuadAugment` runs on the training device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .cache import ImageCache
from .sampler import IdentitySampler, Step

if TYPE_CHECKING:
    from ..config.schema import DataConfig
    from ..datasets.records import VIReIDDataset


class _PairReader(Dataset):
    """Maps a sampler step (index arrays) to the image batches; the caches reopen their memmaps in
    each worker process (they pickle as paths)."""

    def __init__(self, visible: ImageCache, infrared: ImageCache):
        self.visible, self.infrared = visible, infrared

    def __len__(self) -> int:  # not used: the sampler yields the keys
        return 0

    def __getitem__(self, step: Step) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vis, ir, labels = step
        return (
            torch.from_numpy(self.visible.take(vis)),
            torch.from_numpy(self.infrared.take(ir)),
            torch.from_numpy(np.ascontiguousarray(labels)),
        )


class TrainLoader:
    """Iterable over one epoch of steps; ``set_epoch`` before each epoch; checkpoint with ``state_dict``."""

    def __init__(
        self,
        visible: ImageCache,
        infrared: ImageCache,
        sampler: IdentitySampler,
        *,
        workers: int = 2,
        pin_memory: bool = False,
    ):
        self.sampler = sampler
        self.batch_size = sampler.P * sampler.K
        self.warnings = list(sampler.warnings)
        self._loader = DataLoader(
            _PairReader(visible, infrared),
            sampler=sampler,
            batch_size=None,
            num_workers=workers,
            pin_memory=pin_memory,
            persistent_workers=workers > 0,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return iter(self._loader)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def build_train_loader(
    cache_visible: ImageCache,
    cache_infrared: ImageCache,
    dataset: VIReIDDataset,
    cfg: DataConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    pin_memory: bool | None = None,
) -> TrainLoader:
    """The training loader of one DDP rank over the training caches of ``dataset``. Labels come from the
    caches' records (so images a ``skip_corrupt`` cache left out are never drawn)."""
    for name, cache in (("visible", cache_visible), ("infrared", cache_infrared)):
        if (cache.height, cache.width) != (cfg.height, cfg.width):
            raise ValueError(
                f"the {name} training cache is {cache.height}x{cache.width}, "
                f"data.height x data.width is {cfg.height}x{cfg.width}"
            )
        bad = {r.label for r in cache.records if not 0 <= r.label < dataset.num_classes}
        if bad:
            raise ValueError(
                f"the {name} training cache holds labels outside 0..{dataset.num_classes - 1}: "
                f"{sorted(bad)[:10]} (is it built from the test records?)"
            )
    sampler = IdentitySampler(
        [r.label for r in cache_visible.records],
        [r.label for r in cache_infrared.records],
        cfg.identities_per_batch,
        cfg.instances_per_identity,
        rank=rank,
        world_size=world_size,
        seed=seed,
        iterations_per_epoch=cfg.iterations_per_epoch,
    )
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return TrainLoader(cache_visible, cache_infrared, sampler, workers=cfg.loader_workers, pin_memory=pin_memory)
