"""Preflight of a dataset on the driver: layout, split and index files, identity coverage in each
modality, and the header of every image, before any Ray work starts."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..datasets.errors import SKIP_HINT, CorruptImageError, DatasetError
from ..datasets.records import VIReIDDataset
from .images import scan_images

_SHOWN = 3  # unreadable files named in a message


@dataclass
class DatasetCheck:
    dataset: VIReIDDataset
    images: int
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_coverage(dataset: VIReIDDataset, missing_modality: str) -> list[str]:
    """Stop on training ids that lack a modality (``missing_modality="error"``), else warn of them."""
    if not dataset.incomplete_ids:
        return []
    ids = ", ".join(map(str, dataset.incomplete_ids[:10])) + (" ..." if len(dataset.incomplete_ids) > 10 else "")
    text = (
        f"{dataset.name} at {dataset.root}: {len(dataset.incomplete_ids)} training ids have images in one "
        f"modality only ({ids})"
    )
    if missing_modality == "error":
        raise DatasetError(text, hint="--set data.missing_modality=warn drops them from training and warns")
    return [text + "; they are dropped from training"]


def check_images(dataset: VIReIDDataset, *, skip_corrupt: bool, progress: bool) -> DatasetCheck:
    """Header-check every listed image; the first unreadable one stops the run unless ``skip_corrupt``."""
    records = dataset.train_visible + dataset.train_infrared + dataset.test_visible + dataset.test_infrared
    paths = sorted({r.path for r in records})
    bad = scan_images(paths, progress=progress)
    check = DatasetCheck(dataset, len(paths), bad)
    if not bad:
        return check
    if not skip_corrupt:
        path, problem = bad[0]
        more = f" ({len(bad)} unreadable images in all)" if len(bad) > 1 else ""
        raise CorruptImageError(path, problem + more)
    named = "; ".join(f"{p} ({why})" for p, why in bad[:_SHOWN])
    check.warnings.append(
        f"{len(bad)} of {len(paths)} images are unreadable and will be skipped: {named}"
        + (" ..." if len(bad) > _SHOWN else "")
    )
    return check


def check_dataset(data_cfg, *, progress: bool = True) -> DatasetCheck:
    """Read the dataset of ``data_cfg`` (generating the synthetic one if needed) and check it whole."""
    from ..data import build_dataset

    dataset = build_dataset(data_cfg, progress=progress)
    warnings = check_coverage(dataset, data_cfg.missing_modality)
    check = check_images(dataset, skip_corrupt=data_cfg.skip_corrupt, progress=progress)
    check.warnings[:0] = warnings
    return check


def print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        print(f"mscm: warning: {w}", file=sys.stderr)


__all__ = ["DatasetCheck", "check_dataset", "check_images", "check_coverage", "print_warnings", "SKIP_HINT"]
