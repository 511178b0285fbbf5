"""k-reciprocal re-ranking (Zhong, Zheng, Cao and Li, "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), written from the paper's definitions.

For the queries and the gallery together (N items, features L2-normalised, d = squared Euclidean distance):

1. R(i, k): the k-reciprocal neighbours of i: the j among i's k+1 nearest (i itself included) that have i
   among their own k+1 nearest (eq. 4).
2. R*(i, k1): R(i, k1) joined with R(j, round(k1/2)) of each j in it whose overlap with R(i, k1) is more than
   2/3 of its size (eq. 6).
3. V_i: weights exp(-d(i, j)) on R*(i, k1), zero elsewhere, normalised to sum 1 (eq. 7); with k2 > 1, V_i is
   replaced by the mean of V over i's k2 nearest neighbours (local query expansion, eq. 11).
4. Jaccard distance d_J(p, g) = 1 - sum_k min(V_p[k], V_g[k]) / sum_k max(V_p[k], V_g[k]) (eq. 10); as rows
   sum to 1, sum max = 2 - sum min.
5. d*(p, g) = (1 - lambda) d_J(p, g) + lambda d(p, g) (eq. 12).

The paper's settings: k1 = 20, k2 = 6, lambda = 0.3. Results with re-ranking carry their own metric names
(``rerank/mAP`` ...): the paper's (MSCMNet's) numbers use none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

RERANK_PREFIX = "rerank/"  # results with re-ranking: rerank/<protocol>, metrics rerank/<protocol>/mAP ...


@dataclass(frozen=True)
class RerankSettings:
    k1: int = 20
    k2: int = 6
    lam: float = 0.3

    def __post_init__(self) -> None:
        if self.k1 < 1 or self.k2 < 1 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"re-ranking needs k1 >= 1, k2 >= 1 and 0 <= lambda <= 1, got {self}")


def _squared_distances(x: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_(min=0.0)


def _reciprocal(neighbours: np.ndarray, i: int, k: int) -> np.ndarray:
    """R(i, k) from each item's nearest-first neighbour list (the item itself first)."""
    forward = neighbours[i, : k + 1]
    back = neighbours[forward, : k + 1]
    return forward[(back == i).any(axis=1)]


def _expanded(neighbours: np.ndarray, i: int, k1: int) -> np.ndarray:
    base = _reciprocal(neighbours, i, k1)
    half = max(1, int(round(k1 / 2)))
    parts = [base]
    for j in base:
        candidate = _reciprocal(neighbours, int(j), half)
        if len(np.intersect1d(candidate, base)) > 2.0 / 3.0 * len(candidate):
            parts.append(candidate)
    return np.unique(np.concatenate(parts))


def _encodings(dist: np.ndarray, neighbours: np.ndarray, s: RerankSettings) -> np.ndarray:
    """V (N x N): each row's weights on its expanded k-reciprocal set, summing to 1."""
    n = dist.shape[0]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        members = _expanded(neighbours, i, s.k1)
        weights = np.exp(-dist[i, members])
        v[i, members] = weights / weights.sum()
    if s.k2 > 1:  # row i: the mean of its k2 nearest rows' encodings; in blocks (N x k2 x N at once is GBs)
        expanded = np.empty_like(v)
        for lo in range(0, n, 256):
            expanded[lo : lo + 256] = v[neighbours[lo : lo + 256, : s.k2]].mean(axis=1)
        v = expanded
    return v


def _jaccard(v: np.ndarray, nq: int) -> np.ndarray:
    """d_J between the first ``nq`` rows (queries) and the rest (gallery), via each column's non-zero rows."""
    gallery = v[nq:]
    columns = np.ascontiguousarray(gallery.T)
    rows_of = [np.flatnonzero(column) for column in columns]
    out = np.empty((nq, len(gallery)), dtype=np.float32)
    for i in range(nq):
        shared = np.zeros(len(gallery), dtype=np.float32)
        for k in np.flatnonzero(v[i]):
            rows = rows_of[k]
            shared[rows] += np.minimum(v[i, k], gallery[rows, k])
        out[i] = 1.0 - shared / (2.0 - shared)
    return out


def rerank_distances(
    query: torch.Tensor, gallery: torch.Tensor, settings: RerankSettings | None = None, *, normalize: bool = True
) -> np.ndarray:
    """The re-ranked query x gallery distance matrix d* (smaller = closer), float32. ``normalize``: L2-normalise
    the features first (as the evaluation ranks them); off for features that are positions already."""
    s = settings or RerankSettings()
    feats = torch.cat([query, gallery]).float()
    if normalize:
        feats = feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)
    dist = _squared_distances(feats)
    k = min(max(s.k1, s.k2) + 1, len(feats))
    # Ties broken by index, so the neighbour lists (and the result) do not depend on the sort's kernel.
    neighbours = np.argsort(dist.numpy(), axis=1, kind="stable")[:, :k]
    v = _encodings(dist.numpy(), neighbours, s)
    nq = len(query)
    original = dist[:nq, nq:].numpy()
    return (1.0 - s.lam) * _jaccard(v, nq) + s.lam * original
