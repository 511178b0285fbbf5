"""``mscm embed``: every image of a folder embedded with a model, written to one ``.npz`` file.

The file holds ``paths`` (relative to the folder), ``embeddings`` (float32, N x D, L2-normalised),
``modality`` and ``model`` (the source it was loaded from), plus ``skipped``: unreadable files with the
reason. Images are read and resized as ``mscm retrieve`` reads them (:func:`mscm.registry.retrieve.embed_files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets.records import Modality
from .retrieve import RetrievalError, embed_files, gallery_files
from .source import Embedder


@dataclass(frozen=True)
class EmbedReport:
    out: Path
    count: int
    dim: int
    skipped: list[str]


def checked_request(modality: str, out: str | Path) -> tuple[Modality, Path]:
    """The modality and output file, refused before any model is loaded."""
    try:
        mod = Modality.parse(modality)
    except ValueError as e:
        raise RetrievalError(str(e)) from None
    if Path(out).suffix != ".npz":
        raise RetrievalError(f"--out {out}: must end in .npz")
    return mod, Path(out)


def embed_folder(
    model: Embedder, folder: str | Path, modality: str, out: str | Path, *, batch_size: int = 64, progress: bool = True
) -> EmbedReport:
    mod, out = checked_request(modality, out)
    folder = Path(folder)
    files = gallery_files(folder)
    feats, kept, skipped = embed_files(model, files, mod, batch_size=batch_size, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        paths=np.array([str(p.relative_to(folder)) for p in kept]),
        embeddings=feats.numpy().astype(np.float32),
        modality=np.array(mod.name.lower()),
        model=np.array(model.source),
        skipped=np.array(skipped, dtype=str),
    )
    return EmbedReport(out, len(kept), int(feats.shape[1]), skipped)
