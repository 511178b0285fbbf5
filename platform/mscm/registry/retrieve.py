"""Rank a folder of images against one query image with a registered model (or a checkpoint).

The query is embedded with its modality's branch, the gallery with the gallery modality's (by default
the other one: visible-infrared retrieval); images are read like the test images of training (RGB,
LANCZOS-resized to the model's input size) and ranked by cosine similarity. Outputs: ``ranked.csv``
and ``ranked.json`` (the top matches with their scores) and ``grid.png`` (the query and its top
matches, with rank and score under each).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.cache import load_image
from ..datasets.errors import CorruptImageError
from ..datasets.records import Modality
from ..errors import RegistryError
from .source import Embedder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
TILE_HEIGHT = 160  # display size of one image in the grid


class RetrievalError(RegistryError, ValueError):
    """Bad retrieval input: an unreadable query, an empty gallery, an unknown modality."""


@dataclass(frozen=True)
class Match:
    rank: int
    score: float  # cosine similarity
    path: str


@dataclass
class Ranking:
    model: str
    query: str
    query_modality: str
    gallery: str
    gallery_modality: str
    gallery_size: int
    matches: list[Match]
    skipped: list[str] = field(default_factory=list)  # unreadable gallery files


def gallery_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise RetrievalError(f"gallery {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RetrievalError(f"gallery {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def embed_files(
    model: Embedder, paths: list[Path], modality: Modality, *, batch_size: int = 64, progress: bool = True
) -> tuple[torch.Tensor, list[Path], list[str]]:
    """Embeddings of the readable files (N x D), those files, and the unreadable ones with the reason."""
    from tqdm.auto import tqdm

    feats, kept, skipped = [], [], []
    for lo in tqdm(
        range(0, len(paths), batch_size),
        desc=f"embedding ({modality.name.lower()})",
        unit="batch",
        disable=not progress or len(paths) <= batch_size,
        leave=False,
    ):
        images = []
        for p in paths[lo : lo + batch_size]:
            try:
                images.append(load_image(str(p), model.height, model.width))
                kept.append(p)
            except CorruptImageError as e:
                skipped.append(f"{p}: {e.reason}")
        if images:
            batch = torch.from_numpy(np.stack(images))
            feats.append(model(batch, torch.full((len(images),), int(modality), dtype=torch.int64)))
    if not feats:
        raise RetrievalError("no readable images: " + "; ".join(skipped[:3]))
    return torch.cat(feats), kept, skipped


def rank_queries(
    model: Embedder,
    queries: list[str | Path],
    gallery: str | Path,
    modality: str | Modality,
    *,
    top: int = 10,
    gallery_modality: str | Modality | None = None,
    progress: bool = True,
) -> list[Ranking]:
    """One ranking of the gallery folder per query image (all of modality ``modality``); the gallery
    is read and embedded once."""
    if top < 1:
        raise RetrievalError(f"--top must be >= 1, got {top}")
    try:
        q_mod = Modality.parse(modality)
        g_mod = Modality(1 - q_mod) if gallery_modality is None else Modality.parse(gallery_modality)
    except ValueError as e:
        raise RetrievalError(str(e)) from None
    images = []
    for query in queries:
        try:
            images.append(load_image(str(query), model.height, model.width))
        except CorruptImageError as e:
            raise RetrievalError(f"query {query}: {e.reason}") from None
    q = model(torch.from_numpy(np.stack(images)), torch.full((len(images),), int(q_mod), dtype=torch.int64))
    g, kept, skipped = embed_files(model, gallery_files(gallery), g_mod, progress=progress)
    rankings = []
    for query, scores in zip(queries, (q @ g.T).numpy()):
        order = np.argsort(-scores, kind="stable")[:top]  # ties keep the gallery's (sorted path) order
        matches = [Match(i + 1, float(scores[j]), str(kept[j])) for i, j in enumerate(order)]
        rankings.append(
            Ranking(
                model.source,
                str(query),
                q_mod.name.lower(),
                str(gallery),
                g_mod.name.lower(),
                len(kept),
                matches,
                list(skipped),
            )
        )
    return rankings


def rank_gallery(
    model: Embedder,
    query: str | Path,
    gallery: str | Path,
    modality: str | Modality,
    *,
    top: int = 10,
    gallery_modality: str | Modality | None = None,
    progress: bool = True,
) -> Ranking:
    """The gallery folder ranked against one query image."""
    return rank_queries(
        model, [query], gallery, modality, top=top, gallery_modality=gallery_modality, progress=progress
    )[0]


def write_ranking(ranking: Ranking, out_dir: str | Path) -> dict[str, Path]:
    """``ranked.csv``, ``ranked.json`` and ``grid.png`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "ranked.csv", "json": out / "ranked.json", "grid": out / "grid.png"}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "score", "path"])
        for m in ranking.matches:
            w.writerow([m.rank, f"{m.score:.6f}", m.path])
    paths["json"].write_text(json.dumps(asdict(ranking), indent=2) + "\n")
    grid_image(ranking).save(paths["grid"])
    return paths


def _tile(path: str, caption: list[str], colour: tuple[int, int, int]):
    from PIL import Image, ImageDraw, ImageOps

    with Image.open(path) as im:
        im = ImageOps.contain(im.convert("RGB"), (TILE_HEIGHT, TILE_HEIGHT))
    width = max(im.width, 96) + 8
    tile = Image.new("RGB", (width, TILE_HEIGHT + 8 + 14 * len(caption) + 4), (255, 255, 255))
    ImageDraw.Draw(tile).rectangle([0, 0, width - 1, TILE_HEIGHT + 7], outline=colour, width=3)
    tile.paste(im, ((width - im.width) // 2, 4 + (TILE_HEIGHT - im.height) // 2))
    draw = ImageDraw.Draw(tile)
    for i, line in enumerate(caption):
        draw.text((4, TILE_HEIGHT + 10 + 14 * i), line, fill=(0, 0, 0))
    return tile


def grid_image(ranking: Ranking):
    """The query (blue frame) followed by its top matches in rank order, on one row."""
    from PIL import Image

    def short(p: str, n: int = 16) -> str:
        name = Path(p).name
        return name if len(name) <= n else name[: n - 1] + "…"

    tiles = [_tile(ranking.query, ["query", f"({ranking.query_modality})", short(ranking.query)], (40, 90, 220))]
    tiles += [_tile(m.path, [f"#{m.rank}  {m.score:.3f}", short(m.path)], (160, 160, 160)) for m in ranking.matches]
    grid = Image.new(
        "RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) + 1), max(t.height for t in tiles) + 8), (255, 255, 255)
    )
    x = 4
    for t in tiles:
        grid.paste(t, (x, 4))
        x += t.width + 4
    return grid
