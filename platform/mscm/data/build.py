"""Dataset entry points: read a configured dataset (or generate the synthetic one), carve a validation
split out of the training identities, and drop images an image cache could not read."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..datasets import read_dataset
from ..datasets.records import VIReIDDataset

if TYPE_CHECKING:
    from ..config.schema import DataConfig
    from .cache import ImageCache


def build_dataset(cfg: DataConfig, *, progress: bool = True) -> VIReIDDataset:
    """The dataset of a run: ``cfg.root`` in the layout of ``cfg.dataset``, or, when ``cfg.root`` is null,
    the synthetic dataset in that layout (generated once under ``mscm.paths.synthetic_root``)."""
    root: str | Path | None = cfg.root
    if root is None:
        from .synth import Style, ensure_synthetic

        s = cfg.synthetic
        style = Style(s.ir_coupling, s.clutter, s.variation)
        root = ensure_synthetic(cfg.dataset, s.identities, s.seed, s.height, s.width, style=style, progress=progress)
    return read_dataset(cfg.dataset, root, split=cfg.regdb_trial)


def holdout_identities(dataset: VIReIDDataset, n: int, seed: int) -> VIReIDDataset:
    """Hold ``n`` training identities out for model selection.

    The chosen ids (a seeded draw from the sorted training pids) take all their images into the test
    lists, with label -1 and their original pids; the test lists then hold *only* these ids, so
    selecting on them never looks at the real test split (``split`` becomes "val"). The remaining
    training ids are relabelled 0..C-n-1 by sorted pid.
    """
    pids = sorted({r.pid for r in dataset.train_visible})
    if not 0 < n < len(pids):
        raise ValueError(
            f"val_identities must be in 1..{len(pids) - 1} for {dataset.name} ({len(pids)} training ids), got {n}"
        )
    held = set(random.Random(seed).sample(pids, n))
    label_of = {pid: i for i, pid in enumerate(p for p in pids if p not in held)}

    def train_part(records):
        return [replace(r, label=label_of[r.pid]) for r in records if r.pid not in held]

    def held_part(records):
        return [replace(r, label=-1) for r in records if r.pid in held]

    return replace(
        dataset,
        train_visible=train_part(dataset.train_visible),
        train_infrared=train_part(dataset.train_infrared),
        test_visible=held_part(dataset.train_visible),
        test_infrared=held_part(dataset.train_infrared),
        num_classes=len(label_of),
        warnings=list(dataset.warnings),
        split="val",
    )


def drop_skipped(dataset: VIReIDDataset, caches: Iterable[ImageCache]) -> VIReIDDataset:
    """The dataset without the images that ``skip_corrupt`` caches left out, so its record lists stay
    aligned with the caches built from them. Labels are unchanged; a training id left without images
    in one modality is reported (the sampler never draws it)."""
    skipped = {path for cache in caches for path in cache.skipped}
    if not skipped:
        return dataset
    keep = lambda records: [r for r in records if r.path not in skipped]  # noqa: E731
    out = replace(
        dataset,
        train_visible=keep(dataset.train_visible),
        train_infrared=keep(dataset.train_infrared),
        test_visible=keep(dataset.test_visible),
        test_infrared=keep(dataset.test_infrared),
        warnings=list(dataset.warnings) + [f"{dataset.name}: {len(skipped)} unreadable images skipped"],
    )
    lost = {r.pid for r in dataset.train_visible + dataset.train_infrared} - (
        {r.pid for r in out.train_visible} & {r.pid for r in out.train_infrared}
    )
    if lost:
        out.warnings.append(
            f"{dataset.name}: training ids without images in one modality after skipping "
            f"unreadable files (never sampled): {', '.join(map(str, sorted(lost)))}"
        )
    return out
