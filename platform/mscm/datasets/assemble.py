"""Helpers shared by the dataset readers: image listing, index-file parsing, and turning raw records
into a :class:`VIReIDDataset` (relabelling, modality checks, deterministic order)."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from .errors import ROOT_HINT, DatasetError
from .records import ImageRecord, Modality, VIReIDDataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


def require_dir(path: str | Path, what: str, *, hint: str | None = None) -> Path:
    path = Path(path).expanduser().absolute()
    if not path.is_dir():
        raise DatasetError(
            f"{what}: expected a folder at {path}, found {'a file' if path.exists() else 'nothing'}", hint=hint
        )
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what}: expected the file {path}, found {'a folder' if path.exists() else 'nothing'}")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (other files are ignored)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def require_root(path: str | Path, what: str) -> Path:
    """The dataset's root folder; a missing one says which option sets it."""
    return require_dir(path, what, hint=ROOT_HINT)


def camera_folders(parent: Path) -> list[tuple[int, Path]]:
    """``camN`` sub-folders of ``parent`` as (N, path), sorted by N."""
    out = []
    for p in parent.iterdir():
        m = re.fullmatch(r"cam(\d+)", p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def read_id_file(path: Path, what: str = "identity list") -> list[int]:
    """Comma-separated integer ids (SYSU ``exp/*_id.txt``, LLCM ``idx/test_id.txt``); any line layout."""
    require_file(path, what)
    ids = []
    for token in re.split(r"[,\s]+", path.read_text().strip()):
        if not token:
            continue
        try:
            ids.append(int(token))
        except ValueError:
            raise DatasetError(f"{path}: expected comma-separated integer ids, found {token!r}") from None
    return ids


def read_index_file(path: Path, what: str = "image index") -> list[tuple[str, int, int]]:
    """``<relative path> <integer label>`` lines (RegDB and LLCM ``idx/*.txt``) -> (path, label, line number)."""
    require_file(path, what)
    out = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{path}:{lineno}: expected '<relative path> <label>', found {line.strip()!r}")
        try:
            label = int(parts[1])
        except ValueError:
            raise DatasetError(f"{path}:{lineno}: label {parts[1]!r} is not an integer") from None
        out.append((parts[0], label, lineno))
    return out


def check_listed_image(root: Path, rel: str, index: Path, lineno: int) -> Path:
    path = root / rel
    if not path.is_file():
        raise DatasetError(f"{index}:{lineno}: listed image {path} does not exist")
    return path


def _ids_text(pids: set[int] | list[int]) -> str:
    return ", ".join(str(p) for p in sorted(pids))


def _missing_modality(visible: set[int], infrared: set[int]) -> str:
    parts = []
    if visible - infrared:
        parts.append(f"no infrared images: {_ids_text(visible - infrared)}")
    if infrared - visible:
        parts.append(f"no visible images: {_ids_text(infrared - visible)}")
    return "; ".join(parts)


def _listed_without_images(name: str, part: str, listed: set[int] | None, seen: set[int]) -> list[str]:
    empty = (listed or set()) - seen
    return [f"{name}: {len(empty)} listed {part} ids have no images at all: {_ids_text(empty)}"] if empty else []


def assemble(
    name: str,
    root: Path,
    train: list[ImageRecord],
    test: list[ImageRecord],
    warnings: list[str] | None = None,
    expected_train_ids: set[int] | None = None,
    expected_test_ids: set[int] | None = None,
) -> VIReIDDataset:
    """Split by modality, drop training ids that lack a modality (they cannot be sampled), relabel the
    rest by sorted pid to 0..C-1, sort every list by path, and record what was dropped or missing."""
    warnings = list(warnings or [])
    by_mod: dict[Modality, set[int]] = defaultdict(set)
    for r in train:
        by_mod[r.modality].add(r.pid)
    vis_ids, ir_ids = by_mod[Modality.VISIBLE], by_mod[Modality.INFRARED]
    usable = vis_ids & ir_ids
    if vis_ids ^ ir_ids:
        dropped = len(vis_ids ^ ir_ids)
        warnings.append(f"{name}: dropped {dropped} training ids ({_missing_modality(vis_ids, ir_ids)})")
    warnings += _listed_without_images(name, "training", expected_train_ids, vis_ids | ir_ids)
    if not usable:
        raise DatasetError(f"{name} at {root}: no training identity has images in both modalities")
    label_of = {pid: i for i, pid in enumerate(sorted(usable))}
    kept = sorted((replace(r, label=label_of[r.pid]) for r in train if r.pid in usable), key=lambda r: r.path)

    test = sorted((replace(r, label=-1) for r in test), key=lambda r: r.path)
    t_vis = {r.pid for r in test if r.modality is Modality.VISIBLE}
    t_ir = {r.pid for r in test if r.modality is Modality.INFRARED}
    if t_vis ^ t_ir:
        missing = _missing_modality(t_vis, t_ir)
        warnings.append(f"{name}: test ids missing a modality ({missing}); their queries cannot match")
    warnings += _listed_without_images(name, "test", expected_test_ids, t_vis | t_ir)
    for w in warnings:
        log.warning(w)
    return VIReIDDataset(
        name=name,
        root=str(root),
        incomplete_ids=tuple(sorted(vis_ids ^ ir_ids)),
        train_visible=[r for r in kept if r.modality is Modality.VISIBLE],
        train_infrared=[r for r in kept if r.modality is Modality.INFRARED],
        test_visible=[r for r in test if r.modality is Modality.VISIBLE],
        test_infrared=[r for r in test if r.modality is Modality.INFRARED],
        num_classes=len(label_of),
        warnings=warnings,
    )
