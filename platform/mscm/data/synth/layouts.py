"""Write a synthetic dataset in the on-disk layout of SYSU-MM01, RegDB or LLCM (image files and index
files exactly as the real datasets have them; docs/protocols.md, "Datasets on disk").

Everything is a function of (layout, identities, seed, height, width): the same arguments give the
same files. Image counts are small versions of the real ones: SYSU 4-6 images per id and camera with
some cameras missing per id, RegDB 10 visible + 10 thermal per id and 10 half/half splits, LLCM 2-4
cameras per id and modality with 3-5 images each.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ...datasets import DATASETS
from ...datasets.errors import DatasetError
from ...datasets.synthetic import Plan, Shot
from ..fsutil import file_lock, publish_dir, temp_sibling
from .appearance import sample_identity
from .render import KINDS, Camera, render, sample_camera
from .style import Style

GENERATOR_VERSION = 3  # 2: every camera folder exists even when empty; 3: difficulty style (Style)
MARKER = ".synthetic.json"  # written last: its presence means the folder is complete


def generate(
    layout: str,
    out: str | Path,
    identities: int,
    seed: int = 0,
    height: int = 128,
    width: int = 64,
    *,
    style: Style = Style(),
    progress: bool = True,
) -> dict:
    """Write the dataset into the empty (or new) folder ``out``; returns what the marker file records."""
    if layout not in DATASETS:
        raise ValueError(f"unknown layout {layout!r} (choose from {list(DATASETS)})")
    if identities < 4:
        raise ValueError(f"need at least 4 identities (2 train, 2 test), got {identities}")
    if height < 16 or width < 8:
        raise ValueError(f"image size {height}x{width} is too small (at least 16x8)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: output folder is not empty")
    start = time.perf_counter()
    plan = DATASETS[layout].plan_synthetic(identities, seed)
    for rel in plan.dirs:
        (out / rel).mkdir(parents=True, exist_ok=True)
    _render_shots(plan, out, seed, height, width, style, progress, layout)
    for rel, text in plan.text_files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    info = {
        "layout": layout,
        "identities": identities,
        "seed": seed,
        "height": height,
        "width": width,
        "style": style.as_dict(),
        "images": len(plan.shots),
        "version": GENERATOR_VERSION,
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / MARKER).write_text(json.dumps(info, indent=1) + "\n")
    return info


def _render_shots(
    plan: Plan, out: Path, seed: int, height: int, width: int, style: Style, progress: bool, layout: str
) -> None:
    """Every image of the plan, each from its own seeded generator (so the files do not depend on order)."""
    cameras: dict[tuple[int, str], Camera] = {}
    by_pid: dict[int, list[Shot]] = {}
    for shot in plan.shots:
        by_pid.setdefault(shot.pid, []).append(shot)
    for pid in tqdm(sorted(by_pid), desc=f"synthetic {layout}", unit="id", disable=not progress):
        ident = sample_identity(pid, np.random.default_rng([seed, 1, pid]), ir_luma_weight=style.ir_coupling)
        for shot in by_pid[pid]:
            key = (shot.cam, shot.kind)
            if key not in cameras:
                cameras[key] = sample_camera(
                    shot.cam,
                    shot.kind,
                    np.random.default_rng([seed, 3, shot.cam, KINDS.index(shot.kind)]),
                    low_light=key in plan.low_light,
                )
            rng = np.random.default_rng([seed, 2, pid, shot.cam, KINDS.index(shot.kind), shot.k])
            img = Image.fromarray(render(ident, cameras[key], rng, height, width, style))
            if shot.gray:
                img = img.convert("L")
            path = out / shot.rel
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)


def read_marker(root: str | Path) -> dict | None:
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _matches(info: dict | None, **want) -> bool:
    return (
        info is not None and info.get("version") == GENERATOR_VERSION and all(info.get(k) == v for k, v in want.items())
    )


def generate_atomic(
    layout: str,
    out: str | Path,
    identities: int,
    seed: int = 0,
    height: int = 128,
    width: int = 64,
    *,
    style: Style = Style(),
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Generate into a temporary sibling folder, then rename it to ``out``, so no process ever sees a
    half-written dataset. ``overwrite`` replaces an existing ``out``; otherwise it must not exist."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not empty (use overwrite to replace it)")
    tmp = temp_sibling(out, directory=True)
    try:
        info = generate(layout, tmp, identities, seed, height, width, style=style, progress=progress)
        if out.exists():
            old = temp_sibling(out, directory=True)
            old.rmdir()
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        elif not publish_dir(tmp, out):
            return read_marker(out) or info
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def ensure_synthetic(
    layout: str,
    identities: int,
    seed: int,
    height: int,
    width: int,
    *,
    style: Style = Style(),
    root: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """The synthetic dataset folder for these parameters (default ``mscm.paths.synthetic_root``, with
    ``style.tag()`` appended for a non-default style), generated on first use. Concurrent callers on a
    node serialise on a lock and generate once; a folder from another generator version is regenerated."""
    if root is None:
        from ...paths import synthetic_root

        root = synthetic_root(layout, identities, seed, height, width)
        root = root.with_name(root.name + style.tag())
    root = Path(root).expanduser().absolute()
    want = dict(layout=layout, identities=identities, seed=seed, height=height, width=width, style=style.as_dict())
    if _matches(read_marker(root), **want):
        return root
    with file_lock(root.parent / f".{root.name}.lock"):
        if not _matches(read_marker(root), **want):
            if root.exists() and read_marker(root) is None and any(root.iterdir()):
                raise DatasetError(f"{root} holds files that are not a complete synthetic dataset; remove it")
            generate_atomic(
                layout, root, identities, seed, height, width, style=style, progress=progress, overwrite=True
            )
    return root
