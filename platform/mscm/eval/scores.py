"""Result types of one ranking: per-query scores and their summary (docs/protocols.md
"Metrics")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

CmcKind = Literal["dedup", "standard"]
CMC_KINDS: tuple[str, ...] = ("dedup", "standard")
# Reported ranks (docs/protocols.md: rank-1, 5, 10, 20, capped at the gallery size).
RANKS: tuple[int, ...] = (1, 5, 10, 20)
METRIC_KEYS: tuple[str, ...] = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


@dataclass(frozen=True)
class QueryScores:
    """Per-query results before averaging (all arrays have one entry per query).

    ``ap``/``inp`` are NaN and ``first_rank`` 0 for invalid queries. ``dedup_rank`` is the 1-based
    position of the query's identity in the identity-deduplicated ranking (0: not in it).
    """

    valid: np.ndarray
    num_pos: np.ndarray
    ap: np.ndarray
    inp: np.ndarray
    first_rank: np.ndarray
    dedup_rank: np.ndarray
    num_gallery: int

    @property
    def num_queries(self) -> int:
        return int(self.valid.shape[0])

    def slice(self, lo: int, hi: int) -> QueryScores:
        """The scores of queries lo..hi-1."""
        return QueryScores(
            valid=self.valid[lo:hi],
            num_pos=self.num_pos[lo:hi],
            ap=self.ap[lo:hi],
            inp=self.inp[lo:hi],
            first_rank=self.first_rank[lo:hi],
            dedup_rank=self.dedup_rank[lo:hi],
            num_gallery=self.num_gallery,
        )

    @staticmethod
    def concat(parts: Sequence[QueryScores]) -> QueryScores:
        if not parts:
            raise ValueError("nothing to concatenate")
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        return QueryScores(
            valid=cat("valid"),
            num_pos=cat("num_pos"),
            ap=cat("ap"),
            inp=cat("inp"),
            first_rank=cat("first_rank"),
            dedup_rank=cat("dedup_rank"),
            num_gallery=parts[0].num_gallery,
        )


@dataclass(frozen=True)
class Metrics:
    """One ranking's summary; values are fractions (tables show percentages)."""

    cmc: np.ndarray  # cmc[k-1] = rank-k, k = 1..min(max_rank, gallery size)
    mAP: float
    mINP: float
    cmc_kind: str
    num_queries: int
    num_valid: int
    num_gallery: int

    def rank(self, k: int) -> float:
        """Rank-k accuracy; k beyond the curve (gallery smaller than k) reads the last value."""
        if k < 1:
            raise ValueError(f"rank must be >= 1, got {k}")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def as_dict(self) -> dict[str, float]:
        out = {f"rank{k}": self.rank(k) for k in RANKS}
        out.update(mAP=self.mAP, mINP=self.mINP)
        return out
