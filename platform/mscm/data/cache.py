"""Decoded-image cache: every image of a record list, resized once, in one uint8 memory-mapped file.

Layout on disk (under ``cache_dir``, default ``mscm.paths.cache_dir()``): ``<name>.u8`` holds an
N x H x W x 3 uint8 array (row i = the i-th readable record), ``<name>.json`` the index (format
version, resolution, every path with its size and mtime, skipped files). ``<name>`` is derived from
the resolution and the path list, so the train and test lists and different resolutions each get
their own cache. On open the index is checked against the files (list, sizes, mtimes, resolution);
any change rebuilds the cache. A build writes temp files and renames them into place (data first,
index last) under a per-cache file lock, so concurrent builders (Ray workers, DDP ranks on a node)
build once and readers never see half a cache.

Resizing: PIL LANCZOS to (height, width), as the reference's ``pre_process_sysu.py`` (ANTIALIAS).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..datasets.errors import CorruptImageError
from ..datasets.records import ImageRecord
from .fsutil import file_lock, temp_sibling

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_CHUNK = 256  # images decoded per thread-pool round (bounds memory held by finished futures)


def _at_size(im: Image.Image, height: int, width: int) -> np.ndarray:
    im = im.convert("RGB")  # forces the full decode, so truncated files fail here
    if im.size != (width, height):
        im = im.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def load_image(path: str | BinaryIO, height: int, width: int) -> np.ndarray:
    """Decode one image (a file, or an open binary stream of its bytes) to an RGB uint8 array of shape
    (height, width, 3); LANCZOS resize."""
    try:
        with Image.open(path) as im:
            return _at_size(im, height, width)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise CorruptImageError(
            str(path) if isinstance(path, str) else "image bytes", f"{type(e).__name__}: {e}"
        ) from e


def resize_array(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """An RGB uint8 (h, w, 3) array at (height, width, 3), resized as :func:`load_image` resizes a file."""
    if pixels.shape[:2] == (height, width):
        return pixels
    return _at_size(Image.fromarray(pixels, "RGB"), height, width)


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class ImageCache(Sequence):
    """Images of ``records`` decoded and resized to (height, width), as a sequence of H x W x 3 uint8
    arrays aligned with :attr:`records` (the readable records, in input order).

    ``skip_corrupt=False`` (default) raises :class:`CorruptImageError` naming the first unreadable file;
    ``True`` leaves unreadable files out, lists them in :attr:`skipped` and reports the count in
    :attr:`warnings` (use :func:`mscm.data.drop_skipped` to keep a dataset aligned with its caches).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        height: int,
        width: int,
        cache_dir: str | os.PathLike | None = None,
        *,
        skip_corrupt: bool = False,
        progress: bool = True,
        threads: int | None = None,
    ):
        if height < 1 or width < 1:
            raise ValueError(f"cache resolution must be positive, got {height}x{width}")
        if cache_dir is None:
            from ..paths import cache_dir as default_cache_dir

            cache_dir = default_cache_dir()
        self.height, self.width = int(height), int(width)
        self.skip_corrupt, self.progress = skip_corrupt, progress
        self.threads = threads or min(8, os.cpu_count() or 1)
        self._input = list(records)
        paths = [r.path for r in self._input]
        key = hashlib.sha1(json.dumps([FORMAT_VERSION, self.height, self.width, paths]).encode()).hexdigest()[:20]
        base = Path(cache_dir).expanduser().absolute() / f"{self.height}x{self.width}-n{len(paths)}-{key}"
        self.data_path, self.index_path = base.with_suffix(".u8"), base.with_suffix(".json")
        stats = [_stat(p) for p in paths]
        with file_lock(base.with_suffix(".lock")):
            index = self._valid_index(paths, stats)
            if index is None:
                index = self._build(paths, stats)
        self._finish_open(index)

    # -- index ------------------------------------------------------------------------------
    def _valid_index(self, paths: list[str], stats: list) -> dict | None:
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, ValueError):
            return None
        ok = (
            index.get("version") == FORMAT_VERSION
            and index.get("height") == self.height
            and index.get("width") == self.width
            and index.get("paths") == paths
            and index.get("stats") == stats
            and self.data_path.is_file()
            and self.data_path.stat().st_size == index.get("rows", -1) * self.height * self.width * 3
        )
        if not ok:
            return None
        if index["skipped"] and not self.skip_corrupt:
            first = index["skipped"][0]
            raise CorruptImageError(
                first["path"],
                f"{first['reason']} ({len(index['skipped'])} unreadable "
                f"files in this list; set data.skip_corrupt to skip them)",
            )
        return index

    def _build(self, paths: list[str], stats: list) -> dict:
        n, h, w = len(paths), self.height, self.width
        tmp = temp_sibling(self.data_path)
        skipped: list[dict] = []
        kept = 0
        try:
            array = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(n, h, w, 3)) if n else None

            def decode(i: int):
                try:
                    return load_image(paths[i], h, w)
                except CorruptImageError as e:
                    if not self.skip_corrupt:
                        raise
                    return e

            with (
                ThreadPoolExecutor(self.threads) as pool,
                tqdm(
                    total=n, desc=f"caching images at {h}x{w}", unit="img", disable=not self.progress or n == 0
                ) as bar,
            ):
                for start in range(0, n, _CHUNK):
                    for i, img in zip(
                        range(start, min(n, start + _CHUNK)), pool.map(decode, range(start, min(n, start + _CHUNK)))
                    ):
                        if isinstance(img, CorruptImageError):
                            skipped.append({"path": paths[i], "reason": img.reason})
                        else:
                            array[kept] = img
                            kept += 1
                        bar.update(1)
            if array is not None:
                array.flush()
                del array
            os.truncate(tmp, kept * h * w * 3)
            os.replace(tmp, self.data_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        index = {
            "version": FORMAT_VERSION,
            "height": h,
            "width": w,
            "rows": kept,
            "paths": paths,
            "stats": stats,
            "skipped": skipped,
        }
        tmp_index = temp_sibling(self.index_path)
        tmp_index.write_text(json.dumps(index))
        os.replace(tmp_index, self.index_path)
        return index

    def _finish_open(self, index: dict) -> None:
        skipped = {s["path"] for s in index["skipped"]}
        self.skipped: list[str] = [s["path"] for s in index["skipped"]]
        self.records: list[ImageRecord] = [r for r in self._input if r.path not in skipped]
        self.warnings: list[str] = []
        if skipped:
            detail = "; ".join(f"{s['path']} ({s['reason']})" for s in index["skipped"][:5])
            more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            msg = f"skipped {len(skipped)} of {len(self._input)} unreadable images: {detail}{more}"
            self.warnings.append(msg)
            log.warning(msg)
        self._rows = index["rows"]
        self._array: np.ndarray | None = None

    # -- access -----------------------------------------------------------------------------
    @property
    def array(self) -> np.ndarray:
        """The N x H x W x 3 uint8 array (a read-only memmap; opened lazily, also after unpickling)."""
        if self._array is None:
            shape = (self._rows, self.height, self.width, 3)
            self._array = (
                np.memmap(self.data_path, dtype=np.uint8, mode="r", shape=shape)
                if self._rows
                else np.zeros(shape, np.uint8)
            )
        return self._array

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, i):  # int -> H x W x 3 (read-only view); slice -> view
        return self.array[i]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.array[i] for i in range(self._rows))

    def take(self, indices) -> np.ndarray:
        """Rows ``indices`` as a new B x H x W x 3 uint8 array."""
        return self.array[np.asarray(indices, dtype=np.int64)]

    def __getstate__(self) -> dict:
        # DataLoader workers and Ray get the paths, not a pickled copy of the whole array.
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def __repr__(self) -> str:
        return f"ImageCache({self._rows} images, {self.height}x{self.width}, {self.data_path})"
