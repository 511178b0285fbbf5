"""The standard VI-ReID test protocols: which test records are queries and gallery in each trial.

Each dataset declares its protocols (mscm.datasets); this module applies them as the lineage's
data_manager does (docs/protocols.md): SYSU-MM01 all/indoor search, RegDB and LLCM both directions.
A protocol selects *indices* into ``dataset.test_visible`` / ``dataset.test_infrared``; features
are extracted once for every record a protocol can use (:func:`candidates`) and each trial only
picks rows (mscm.eval.runner).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..datasets import ProtocolSpec, get_dataset
from ..datasets.records import ImageRecord, Modality, VIReIDDataset

GalleryMode = Literal["single", "multi"]
# Multi-shot SYSU gallery: 10 images per (identity, camera) (docs/protocols.md).
MULTI_SHOT = 10


def check_dataset(spec: ProtocolSpec, dataset: VIReIDDataset) -> None:
    if dataset.name != spec.dataset:
        raise ValueError(
            f"protocol {spec.name!r} is for {spec.dataset} data, the dataset is {dataset.name!r} "
            f"(its protocols: {list(get_dataset(dataset.name).protocol_names)})"
        )


def records_of(dataset: VIReIDDataset, modality: Modality) -> list[ImageRecord]:
    return dataset.test_visible if modality == Modality.VISIBLE else dataset.test_infrared


def _in_cams(records: list[ImageRecord], cams: tuple[int, ...] | None) -> np.ndarray:
    if cams is None:
        return np.arange(len(records), dtype=np.int64)
    keep = set(cams)
    return np.array([i for i, r in enumerate(records) if r.camid in keep], dtype=np.int64)


@dataclass(frozen=True)
class Candidates:
    """Every record a protocol can use, as ascending indices into the modality's test list."""

    query: np.ndarray
    gallery: np.ndarray


def candidates(spec: ProtocolSpec, dataset: VIReIDDataset) -> Candidates:
    q = _in_cams(records_of(dataset, spec.query_modality), spec.query_cams)
    g = _in_cams(records_of(dataset, spec.gallery_modality), spec.gallery_cams)
    if len(q) == 0:
        raise ValueError(f"{spec.name}: no {spec.query_modality.name.lower()} test records in cams {spec.query_cams}")
    if len(g) == 0:
        raise ValueError(
            f"{spec.name}: no {spec.gallery_modality.name.lower()} test records in cams {spec.gallery_cams}"
        )
    return Candidates(q, g)


def _pid_key(pid: int) -> str:
    # The reference sorts the ids as "%04d" strings; identical to numeric order below 10,000.
    return f"{pid:04d}"


class GalleryFolders:
    """The (identity, camera) folders of a drawn gallery, in the reference's iteration order: identities
    sorted, cameras in ``cams`` order, folders without images skipped (the reference skips them too).
    Built once; each trial's draw then only consumes the random stream."""

    def __init__(self, records: list[ImageRecord], cams: tuple[int, ...]):
        by_folder: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
        wanted = set(cams)
        for i, r in enumerate(records):
            if r.camid in wanted:
                by_folder[(r.pid, r.camid)].append((r.path, i))
        self.folders: list[list[int]] = []
        for pid in sorted({pid for pid, _ in by_folder}, key=_pid_key):
            for cam in cams:
                files = by_folder.get((pid, cam))
                if files:
                    # By path, as sorted(os.listdir) joined to one folder; only the length reaches
                    # the random calls, so indices sorted by path draw exactly the same files.
                    self.folders.append([i for _, i in sorted(files)])

    def draw(self, trial: int, mode: GalleryMode = "single") -> np.ndarray:
        if mode not in ("single", "multi"):
            raise ValueError(f"unknown gallery mode {mode!r} (use 'single' or 'multi')")
        rng = random.Random(trial)  # private stream: same draws as random.seed(trial), global state untouched
        if mode == "single":
            chosen = [rng.choice(files) for files in self.folders]
        else:
            chosen = [i for files in self.folders for i in rng.sample(files, min(MULTI_SHOT, len(files)))]
        return np.asarray(chosen, dtype=np.int64)


def draw_gallery(
    records: list[ImageRecord], cams: tuple[int, ...], trial: int, mode: GalleryMode = "single"
) -> np.ndarray:
    """Random gallery of one trial, as indices into ``records`` (docs/protocols.md SYSU/LLCM).

    As the reference: ``random.seed(trial)``; for each identity (sorted), for each camera in
    ``cams`` order that has images: single-shot ``random.choice(sorted(paths))``; multi-shot
    ``random.sample(sorted(paths), 10)``. The reference fails on a folder with fewer than 10
    images; here such a folder gives ``random.sample`` of all of them.
    """
    return GalleryFolders(records, cams).draw(trial, mode)


@dataclass(frozen=True)
class TrialSplit:
    """One trial's query and gallery, as indices into the query / gallery modality's test list."""

    trial: int
    query: np.ndarray
    gallery: np.ndarray


def trial_split(
    spec: ProtocolSpec,
    dataset: VIReIDDataset,
    trial: int,
    gallery_mode: GalleryMode = "single",
    pool: Candidates | None = None,
    folders: GalleryFolders | None = None,
) -> TrialSplit:
    """Query and gallery of ``trial`` (0-based; RegDB has one fixed split per dataset object).
    ``folders``: the gallery folders of ``spec`` on ``dataset``, when drawing many trials."""
    pool = pool or candidates(spec, dataset)
    if not spec.drawn_gallery:
        if gallery_mode != "single":
            raise ValueError(f"{spec.name} uses its whole gallery; gallery_mode must be 'single'")
        return TrialSplit(trial, pool.query, pool.gallery)
    folders = folders or GalleryFolders(records_of(dataset, spec.gallery_modality), spec.gallery_cams)
    return TrialSplit(trial, pool.query, folders.draw(trial, gallery_mode))


def trial_ids(spec: ProtocolSpec, trials: int | list[int] | tuple[int, ...] | range) -> list[int]:
    """Trial numbers to run: n -> 0..n-1, or an explicit list. A whole-gallery protocol (RegDB)
    has a single evaluation whatever is asked (its split is the dataset's)."""
    ids = list(range(trials)) if isinstance(trials, int) else [int(t) for t in trials]
    if not ids:
        raise ValueError("no trials to run")
    if any(t < 0 for t in ids):
        raise ValueError(f"trial numbers must be >= 0, got {ids}")
    return ids if spec.drawn_gallery else ids[:1]
