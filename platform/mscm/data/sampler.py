"""Identity sampler: P identities x (K visible + K infrared) images per step, label-aligned
(docs/model.md, "The training recipe"; docs/protocols.md, "Where selection happens").

Per step the P identities are distinct (drawn without replacement, as the reference's
``np.random.choice(uni_label, P, replace=False)``) and each identity's K visible and K infrared images
are drawn with replacement. Both index lists follow the same label order: id1 x K, id2 x K, ...

DDP: all ranks draw from one generator seeded by (seed, epoch) and each takes its slice, so in every
step the ranks train on different identities (when there are at least P x world_size of them; with
fewer, each rank's P ids are drawn independently and may overlap across ranks) and all ranks run
the same number of steps. A *global* epoch is the reference's single-process epoch,
``int(max(#vis, #ir) / (P*K)) + 1`` batches (or ``iterations_per_epoch``), spread over the ranks:
each rank runs ``ceil(global / world_size)`` steps, so an epoch sees about the same number of images
whatever the world size and epoch-based schedules keep their meaning.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

Step = tuple[np.ndarray, np.ndarray, np.ndarray]  # visible indices, infrared indices, labels (each P*K)


def _positions(labels: Sequence[int]) -> dict[int, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    uniq, starts = np.unique(labels[order], return_index=True)
    return {int(u): order[s:e] for u, s, e in zip(uniq, starts, list(starts[1:]) + [len(labels)])}


class IdentitySampler(Sampler[Step]):
    def __init__(
        self,
        visible_labels: Sequence[int],
        infrared_labels: Sequence[int],
        identities_per_batch: int,
        instances_per_identity: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        iterations_per_epoch: int | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if identities_per_batch < 1 or instances_per_identity < 1:
            raise ValueError("identities_per_batch and instances_per_identity must be >= 1")
        self.vis_pos, self.ir_pos = _positions(visible_labels), _positions(infrared_labels)
        self.labels = np.array(sorted(set(self.vis_pos) & set(self.ir_pos)), dtype=np.int64)
        self.warnings: list[str] = []
        missing = sorted(set(self.vis_pos) ^ set(self.ir_pos))
        if missing:
            self.warnings.append(f"labels without images in both modalities are never sampled: {missing}")
        self.P, self.K = identities_per_batch, instances_per_identity
        if len(self.labels) < self.P:
            raise ValueError(
                f"{len(self.labels)} identities have images in both modalities; a batch needs "
                f"identities_per_batch = {self.P} distinct ones"
            )
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.disjoint_ranks = len(self.labels) >= self.P * world_size
        if not self.disjoint_ranks and world_size > 1:
            self.warnings.append(
                f"only {len(self.labels)} identities for {world_size} ranks x P = {self.P}: "
                "ranks may share identities within a step"
            )
        n = max(len(visible_labels), len(infrared_labels))
        self.global_steps = iterations_per_epoch or int(n / (self.P * self.K)) + 1
        self.steps = math.ceil(self.global_steps / world_size)
        # flat index arrays for vectorised K-draws
        self._vis_n = np.array([len(self.vis_pos[int(c)]) for c in self.labels])
        self._ir_n = np.array([len(self.ir_pos[int(c)]) for c in self.labels])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps

    def _draw(
        self, rng: np.random.Generator, pos: dict[int, np.ndarray], counts: np.ndarray, which: np.ndarray
    ) -> np.ndarray:
        picks = rng.integers(0, counts[which][:, None], size=(len(which), self.K))
        return np.concatenate([pos[int(self.labels[w])][p] for w, p in zip(which, picks)])

    def __iter__(self) -> Iterator[Step]:
        rng = np.random.default_rng([self.seed, self.epoch])
        c, P = len(self.labels), self.P
        for _ in range(self.steps):
            if self.disjoint_ranks:
                world = rng.choice(c, P * self.world_size, replace=False).reshape(self.world_size, P)
            else:
                world = np.stack([rng.choice(c, P, replace=False) for _ in range(self.world_size)])
            draws = [
                (self._draw(rng, self.vis_pos, self._vis_n, ids), self._draw(rng, self.ir_pos, self._ir_n, ids))
                for ids in world
            ]  # every rank draws all ranks' images: one shared random stream
            vis, ir = draws[self.rank]
            yield vis, ir, np.repeat(self.labels[world[self.rank]], self.K)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
