"""What a dataset module declares: :class:`DatasetSpec` (reader, layout, classes, splits, synthetic
plan, recipe) and the :class:`ProtocolSpec` of each of its test protocols. Plain frozen data, so the
config schema, the CLI, the evaluation and the tables all derive from the same declaration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .records import Modality, VIReIDDataset
from .synthetic import Plan


@dataclass(frozen=True)
class ProtocolSpec:
    """One test protocol. ``*_cams`` None = every camera; for a drawn gallery they are listed in the
    order the reference iterates them (the order consumes the random stream)."""

    name: str
    dataset: str
    title: str  # the setting's name in the papers' tables
    query_modality: Modality
    gallery_modality: Modality
    query_cams: tuple[int, ...] | None
    gallery_cams: tuple[int, ...] | None
    drawn_gallery: bool  # True: a random gallery per trial (SYSU, LLCM); False: whole gallery
    removal: str  # a mscm.eval.metrics removal rule
    cmc: str  # "dedup" (the lineage's new CMC) or "standard"
    flip: bool = False  # the authors' flip TTA for this protocol (eval.flip: null follows it)

    @property
    def label(self) -> str:
        q = "IR" if self.query_modality == Modality.INFRARED else "VIS"
        g = "IR" if self.gallery_modality == Modality.INFRARED else "VIS"
        return f"{self.name} ({q}->{g})"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset. ``splits``: the numbered train/test splits of the layout; a dataset with more than
    one (RegDB's ten) trains one model per split and reports the mean over the splits."""

    name: str  # the config's data.dataset, the layout's name
    title: str  # as the papers write it
    read: Callable[[str | Path, int], VIReIDDataset]  # (root, split) -> dataset
    layout: str  # the on-disk layout, one line
    train_classes: int  # training identities of the real dataset (the classifier's size)
    protocols: tuple[ProtocolSpec, ...]  # in the papers' table order
    plan_synthetic: Callable[[int, int], Plan]  # (identities, seed) -> files in this layout
    recipe: str  # the built-in run config that trains on it (mscm/configs/<recipe>.yaml)
    splits: tuple[int, ...] = (1,)

    @property
    def per_split(self) -> bool:
        """One model per split (RegDB): evaluations are numbered by their split and combined."""
        return len(self.splits) > 1

    @property
    def drawn_gallery(self) -> bool:
        """Whether any protocol draws its gallery (only then do multi-shot galleries exist)."""
        return any(p.drawn_gallery for p in self.protocols)

    @property
    def protocol_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.protocols)
