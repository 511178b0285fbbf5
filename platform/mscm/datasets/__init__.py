"""The datasets mscm knows, each declared once in its own module (:mod:`.sysu`, :mod:`.regdb`,
:mod:`.llcm`): reader and layout, training classes, splits, test protocols, synthetic plan and recipe.
The config schema's choices, the CLI's, the evaluation's protocols and the result tables are derived
from :data:`DATASETS`. Adding a dataset: ``docs/architecture.md``, "Adding a dataset".

This package imports only the standard library, numpy and :mod:`mscm.errors`, so the config schema
can derive its choices from it.
"""

from __future__ import annotations

from . import llcm, regdb, sysu
from .errors import CorruptImageError, DatasetError
from .records import ImageRecord, Modality, VIReIDDataset
from .spec import DatasetSpec, ProtocolSpec

DATASETS: dict[str, DatasetSpec] = {m.DATASET.name: m.DATASET for m in (sysu, regdb, llcm)}
PROTOCOL_SPECS: dict[str, ProtocolSpec] = {p.name: p for d in DATASETS.values() for p in d.protocols}


def dataset_names() -> tuple[str, ...]:
    return tuple(DATASETS)


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r} (choose from {list(DATASETS)})") from None


def get_protocol(name: str) -> ProtocolSpec:
    try:
        return PROTOCOL_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r} (choose from {sorted(PROTOCOL_SPECS)})") from None


def read_dataset(name: str, root, *, split: int = 1) -> VIReIDDataset:
    """Read ``root`` in the on-disk layout of ``name``; ``split`` for layouts with several (RegDB)."""
    return get_dataset(name).read(root, split)


__all__ = [
    "DATASETS",
    "PROTOCOL_SPECS",
    "CorruptImageError",
    "DatasetError",
    "DatasetSpec",
    "ImageRecord",
    "Modality",
    "ProtocolSpec",
    "VIReIDDataset",
    "dataset_names",
    "get_dataset",
    "get_protocol",
    "read_dataset",
]
