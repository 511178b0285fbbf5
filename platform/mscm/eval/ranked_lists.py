"""Ranked lists on a protocol's own queries, where right and wrong are known: a PNG grid with one row per
query (the lowest AP first, then a seeded sample of the rest), each query followed by its top-K gallery
images framed green (same identity) or red, after the protocol's removal rule. Every image is labelled with
its camera and modality, the query also with its AP and the rank of its first true match. A JSON file beside
the PNG lists the rows.

Drawn on the first trial's gallery (trial 0 of a drawn gallery, the split of RegDB).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..datasets import get_protocol
from ..datasets.records import Modality
from .full import EvalRequest, TestFeatures
from .metrics import distances, removal_mask, score_distmat
from .protocols import GalleryFolders, candidates, records_of, trial_split
from .test_images import TestImages

TILE_H = 112  # display height of one image
FRAME = 4
COLOURS = {"query": (40, 90, 220), True: (30, 160, 60), False: (210, 40, 40)}
_MOD = {Modality.VISIBLE: "VIS", Modality.INFRARED: "IR"}


@dataclass(frozen=True)
class Row:
    query: int  # index into the query modality's test list
    ap: float
    first_match: int  # 1-based rank of the first true match (0: none kept)
    kind: str  # "lowest AP" or "sample"
    gallery: list[int]  # the top-K, indices into the gallery modality's test list
    correct: list[bool]


def _rows(d: np.ndarray, q_idx, g_idx, info, removal: str, k: int, worst: int, sample: int, seed: int) -> list[Row]:
    (qp, qc), (gp, gc) = info
    scores = score_distmat(d, qp, gp, q_cams=qc, g_cams=gc, removal=removal)
    mask = removal_mask(removal, qp, qc, gp, gc)  # type: ignore[arg-type]
    valid = np.flatnonzero(scores.valid)
    by_ap = valid[np.argsort(scores.ap[valid], kind="stable")]
    rest = by_ap[worst:]
    picked = rest[np.random.default_rng(seed).permutation(len(rest))[:sample]] if len(rest) else rest
    out = []
    for kind, group in (("lowest AP", by_ap[:worst]), ("sample", picked)):
        for i in group:
            order = np.argsort(d[i], kind="stable")
            if mask is not None:
                order = order[~mask[i, order]]
            top = order[:k]
            out.append(
                Row(
                    int(q_idx[i]),
                    float(scores.ap[i]),
                    int(scores.first_rank[i]),
                    kind,
                    [int(g_idx[j]) for j in top],
                    [bool(gp[j] == qp[i]) for j in top],
                )
            )
    return out


def _tile(pixels: np.ndarray, frame, lines: list[str]):
    from PIL import Image, ImageDraw

    h, w = pixels.shape[:2]
    width = max(round(w * TILE_H / h), 64)
    im = Image.fromarray(pixels).resize((width, TILE_H))
    tile = Image.new("RGB", (width + 2 * FRAME, TILE_H + 2 * FRAME + 12 * len(lines) + 4), (255, 255, 255))
    tile.paste(Image.new("RGB", (width + 2 * FRAME, TILE_H + 2 * FRAME), frame), (0, 0))
    tile.paste(im, (FRAME, FRAME))
    draw = ImageDraw.Draw(tile)
    for n, line in enumerate(lines):
        draw.text((2, TILE_H + 2 * FRAME + 1 + 12 * n), line, fill=(0, 0, 0))
    return tile


def _draw(rows: list[Row], images: TestImages, name: str, k: int, path: Path) -> None:
    from PIL import Image, ImageDraw

    spec = get_protocol(name)
    qm, gm = spec.query_modality, spec.gallery_modality
    q_rec, g_rec = records_of(images.dataset, qm), records_of(images.dataset, gm)
    lines = []
    for r in rows:
        q = _tile(
            images.of(qm)[r.query],
            COLOURS["query"],
            [f"query cam{q_rec[r.query].camid} {_MOD[qm]}", f"AP {r.ap:.3f}", f"1st match @{r.first_match or '-'}"],
        )
        tiles = [q] + [
            _tile(images.of(gm)[j], COLOURS[ok], [f"{n + 1}. cam{g_rec[j].camid} {_MOD[gm]}"])
            for n, (j, ok) in enumerate(zip(r.gallery, r.correct))
        ]
        lines.append(tiles)
    tw = max(t.width for row in lines for t in row)
    th = max(t.height for row in lines for t in row)
    grid = Image.new("RGB", (12 + (k + 1) * (tw + 6), 24 + len(lines) * (th + 6)), (255, 255, 255))
    ImageDraw.Draw(grid).text((6, 6), f"{spec.label}: lowest AP first, then a sample (green: same identity)", fill=0)
    for y, row in enumerate(lines):
        for x, tile in enumerate(row):
            grid.paste(tile, (6 + x * (tw + 6) + (12 if x else 0), 24 + y * (th + 6)))
    grid.save(path, optimize=True)


def write_ranked_lists(
    features: TestFeatures,
    images: TestImages,
    request: EvalRequest,
    name: str,
    out: str | Path,
    *,
    k: int = 10,
    worst: int = 6,
    sample: int = 4,
    seed: int = 0,
) -> Path:
    """The grid of protocol ``name`` as ``out`` (a .png; the rows as ``out`` with .json)."""
    spec, dataset = get_protocol(name), images.dataset
    pool = candidates(spec, dataset)
    q_rec, g_rec = records_of(dataset, spec.query_modality), records_of(dataset, spec.gallery_modality)
    folders = GalleryFolders(g_rec, spec.gallery_cams) if spec.drawn_gallery else None
    trial = 0 if spec.drawn_gallery or request.split is None else request.split
    mode = request.settings.gallery_mode if spec.drawn_gallery else "single"
    split = trial_split(spec, dataset, trial, mode, pool, folders)
    flip = features.flips[name]
    d = distances(
        features.of(spec.query_modality, flip, split.query), features.of(spec.gallery_modality, flip, split.gallery)
    ).numpy()
    info = tuple(
        (np.array([r.pid for r in rec])[idx], np.array([r.camid for r in rec])[idx])
        for rec, idx in ((q_rec, split.query), (g_rec, split.gallery))
    )
    rows = _rows(d, split.query, split.gallery, info, spec.removal, k, worst, sample, seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _draw(rows, images, name, k, out)
    out.with_suffix(".json").write_text(json.dumps({"protocol": name, "k": k, "rows": [asdict(r) for r in rows]}))
    return out
