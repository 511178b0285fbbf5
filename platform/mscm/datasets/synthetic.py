"""The plan of a synthetic dataset in a real layout: which image files (identity, camera, kind) and
which index files it holds. Each dataset module writes its own plan; :mod:`mscm.data.synth` renders
the images. Everything is a function of (identities, seed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shot:
    rel: str  # path relative to the dataset root
    pid: int
    cam: int
    kind: str  # camera kind: rgb | nir | thermal
    k: int  # image number within (pid, cam)
    gray: bool = False  # save as a single-channel file


@dataclass
class Plan:
    shots: list[Shot]
    text_files: dict[str, str]  # relative path -> content
    low_light: frozenset = frozenset()  # (cam, kind) of low-light visible cameras
    # folders the real layout always has, created even when no image lands in them (a small dataset
    # may leave a camera without images; the readers require every camera folder)
    dirs: tuple[str, ...] = ()


def id_list(values) -> str:
    """Ids as SYSU/LLCM id files write them: comma-separated, ascending."""
    return ",".join(str(int(v)) for v in sorted(values))


def split_ids(n: int, test_frac: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Ids 1..n split into (train, test), both non-empty with at least two ids each."""
    perm = [int(p) for p in rng.permutation(np.arange(1, n + 1))]
    n_test = min(n - 2, max(2, round(n * test_frac)))
    return sorted(perm[n_test:]), sorted(perm[:n_test])


def some_cameras(rng: np.random.Generator, cams: tuple[int, ...], p: float) -> list[int]:
    """Each camera with probability ``p``, and at least one."""
    chosen = [c for c in cams if rng.random() < p]
    return chosen or [int(rng.choice(cams))]
