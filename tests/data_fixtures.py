"""Small synthetic datasets for the tests/test_data_*.py files.

Each (layout, size) is generated once per pytest session under the session's base temp folder and
reused by every test file (``ensure_synthetic`` finds the finished folder by its marker). Tests that
damage a dataset work on a copy (:func:`copy_dataset`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mscm.data.synth import ensure_synthetic

# Small enough for a quick session, large enough that every layout has several train and test ids.
IDENTITIES = 8
HEIGHT, WIDTH = 64, 32


def synthetic(
    tmp_path_factory, layout: str, identities: int = IDENTITIES, seed: int = 0, height: int = HEIGHT, width: int = WIDTH
) -> Path:
    root = tmp_path_factory.getbasetemp() / "synthetic" / f"{layout}-n{identities}-s{seed}-{height}x{width}"
    return ensure_synthetic(layout, identities, seed, height, width, root=root, progress=False)


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
