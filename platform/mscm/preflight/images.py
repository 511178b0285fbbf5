"""Cheap image checks for the preflight: the header of every image, and a JPEG's end marker.

``PIL.Image.verify`` parses a file's header (and a PNG's chunk checksums) without decoding pixels,
so a SYSU-sized tree takes seconds. It does not notice a truncated JPEG, so a JPEG must also end with
its EOI marker (FF D9): entropy-coded data stuffs every FF byte, so the pair appears only as a marker.
An image that passes both and still fails to decode is caught by the image cache in the worker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

_JPEG_TAIL = 64  # bytes searched for EOI: some writers pad a few bytes after it


def image_problem(path: str) -> str | None:
    """Why ``path`` is not a readable image (one short phrase), or None when its header is sound."""
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
    except UnidentifiedImageError:
        return "not an image file (unknown format)"
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, struct.error...
        return f"{type(e).__name__}: {e}"
    if fmt == "JPEG":
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - _JPEG_TAIL))
            if b"\xff\xd9" not in fh.read():
                return "truncated JPEG (no end-of-image marker)"
    return None


def scan_images(paths: Sequence[str], *, progress: bool = True) -> list[tuple[str, str]]:
    """``(path, problem)`` of every unreadable image in ``paths``, in input order.

    One thread: the check is CPU-bound in PIL's header parsing, and threads fighting over the GIL
    made it 2-3x slower here (bench/preflight.py). The progress bar appears only past 2 s.
    """
    bad = []
    for path in tqdm(paths, desc="checking images", unit="img", delay=2.0, disable=not progress, leave=False):
        problem = image_problem(path)
        if problem is not None:
            bad.append((path, problem))
    return bad
