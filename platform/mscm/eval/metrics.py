"""Ranking metrics of the VI-ReID lineage: CMC (standard and identity-deduplicated), mAP, mINP.

Definitions: shared/design/eval-protocols.md, "Metrics". Distances are -(q . g); each query's
gallery is ranked by ascending distance with a *stable* order, so equal distances keep gallery
order (the lower gallery index ranks first). Gallery entries named by the removal rule are dropped
per query; a query with no positive left is invalid and is skipped for mAP, mINP and the standard
CMC. The reported CMC of SYSU and LLCM is the lineage's identity-deduplicated ("new") CMC.

How it is fast without sorting: a query only needs the ranks of its positives and, for the
deduplicated CMC, how many identities are seen before its first positive.
- rank of positive i = 1 + number of kept gallery entries strictly closer. One batched
  ``searchsorted`` of every distance into the query's sorted positive distances, then one
  ``bincount``, gives all of these counts at once (O(gallery x log positives) per query).
- deduplicated rank = 1 + number of identities whose nearest kept entry is closer than the first
  positive (one ``scatter_reduce(amin)`` per block).
Both are exact when no gallery entry is at exactly the distance of a positive. Such ties are
detected (the boundaries interleave each positive distance with its ``nextafter`` so that equal
distances land in their own bucket) and those rows are recomputed with the stable-sort reference
(mscm.eval.reference), so the result is always that of a stable sort.

Queries are processed in blocks sized by a memory budget, so a 20k x 200k ranking never holds a
20k x 200k matrix (bench/eval_metrics.py).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .reference import score_row
from .scores import CMC_KINDS, CmcKind, Metrics, QueryScores

RemovalRule = Literal["none", "sysu", "same-camera"]
REMOVAL_RULES: tuple[str, ...] = ("none", "sysu", "same-camera")
# SYSU camera rule: a query from infrared cam3 drops every gallery image of visible cam2 (same room).
SYSU_QUERY_CAM, SYSU_REMOVED_GALLERY_CAM = 3, 2
DEFAULT_MEMORY_BUDGET = 512 * 2**20
# Working bytes per (query, gallery) pair inside a block: distance (4), bucket index (4), slack.
_BYTES_PER_PAIR = 16
# Up to this many bounds (2 per positive), counting uses comparison passes instead of a search.
_COMPARE_MAX_BOUNDS = 16

def _np1d(values: object, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def removal_mask(
    rule: RemovalRule, q_pids: object, q_cams: object, g_pids: object, g_cams: object
) -> np.ndarray | None:
    """Dense query x gallery boolean mask of removed entries for a named rule (None for "none").

    "sysu": cam3 queries drop every cam2 gallery image, whatever its identity.
    "same-camera": gallery images with the query's pid and camera are dropped (LLCM).
    """
    if rule == "none":
        return None
    qp, gp = _np1d(q_pids, "q_pids"), _np1d(g_pids, "g_pids")
    if q_cams is None or g_cams is None:
        raise ValueError(f"removal rule {rule!r} needs q_cams and g_cams")
    qc, gc = _np1d(q_cams, "q_cams"), _np1d(g_cams, "g_cams")
    if rule == "sysu":
        return (qc == SYSU_QUERY_CAM)[:, None] & (gc == SYSU_REMOVED_GALLERY_CAM)[None, :]
    if rule == "same-camera":
        return (qp[:, None] == gp[None, :]) & (qc[:, None] == gc[None, :])
    raise ValueError(f"unknown removal rule {rule!r} (choose from {list(REMOVAL_RULES)})")


class _Gallery:
    """Gallery identities grouped once, so each query finds its positives without a full scan."""

    def __init__(self, g_pids: np.ndarray, g_cams: np.ndarray | None, device: torch.device):
        self.pids = g_pids
        self.size = len(g_pids)
        self.uniques, dense = np.unique(g_pids, return_inverse=True)
        order = np.argsort(dense, kind="stable")  # within an identity: ascending gallery index
        counts = np.bincount(dense, minlength=len(self.uniques))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.dense = torch.from_numpy(dense.astype(np.int64)).to(device)
        self.order = torch.from_numpy(order.astype(np.int64)).to(device)
        self.counts = torch.from_numpy(counts.astype(np.int64)).to(device)
        self.starts = torch.from_numpy(starts).to(device)
        self.cams = None if g_cams is None else torch.from_numpy(g_cams).to(device)
        cam2 = np.flatnonzero(g_cams == SYSU_REMOVED_GALLERY_CAM) if g_cams is not None else np.zeros(0)
        self.sysu_cols = torch.from_numpy(cam2.astype(np.int64)).to(device)

    def dense_of(self, q_pids: np.ndarray) -> np.ndarray:
        """Dense gallery identity of each query pid; -1 when the gallery does not hold it."""
        pos = np.searchsorted(self.uniques, q_pids)
        pos = np.minimum(pos, max(len(self.uniques) - 1, 0))
        found = (self.uniques[pos] == q_pids) if len(self.uniques) else np.zeros(len(q_pids), bool)
        return np.where(found, pos, -1).astype(np.int64)


def _score_block(
    d: torch.Tensor,
    q_pids: np.ndarray,
    q_dense: torch.Tensor,
    q_cams: torch.Tensor | None,
    gal: _Gallery,
    removal: str | torch.Tensor,
) -> QueryScores:
    """Scores for one block of query rows; ``d`` (c x ng distances) is modified in place."""
    c, ng = d.shape
    dev = d.device
    inf = float("inf")

    # Removal: removed entries get an infinite distance (kept distances are finite by contract).
    if isinstance(removal, torch.Tensor):
        d.masked_fill_(removal, inf)
    elif removal == "sysu":
        rows = torch.nonzero(q_cams == SYSU_QUERY_CAM).flatten()
        if rows.numel() and gal.sysu_cols.numel():
            d[rows[:, None], gal.sysu_cols[None, :]] = inf

    # Positives: the query identity's gallery group, padded with +inf to the block's widest group.
    has = q_dense >= 0
    qd = q_dense.clamp(min=0)
    cnt = torch.where(has, gal.counts[qd], 0)
    maxp = int(cnt.max()) if c else 0
    if maxp == 0:
        z = np.zeros(c, np.int64)
        nan = np.full(c, np.nan)
        return QueryScores(np.zeros(c, bool), z, nan, nan.copy(), z.copy(), z.copy(), ng)
    slots = torch.arange(maxp, device=dev)
    inside = slots[None, :] < cnt[:, None]
    gidx = gal.order[(gal.starts[qd][:, None] + slots[None, :]).clamp(max=ng - 1)]
    if isinstance(removal, str) and removal == "same-camera":
        same_cam = inside & (gal.cams[gidx] == q_cams[:, None])
        rr, ss = torch.nonzero(same_cam, as_tuple=True)
        d[rr, gidx[rr, ss]] = inf
    pk = d.gather(1, gidx).masked_fill_(~inside, inf)
    pk, _ = pk.sort(dim=1, stable=True)
    valid_slot = torch.isfinite(pk)
    num_pos = valid_slot.sum(1)

    # Boundaries [p0, next(p0), p1, next(p1), ...]: entries below next(p_i) are those at most p_i,
    # so one count gives both "strictly closer" and "tied" per positive.
    bounds = torch.stack([pk, torch.nextafter(pk, torch.full_like(pk, inf))], dim=2).reshape(c, 2 * maxp)
    below = _count_below(d, bounds)
    closer = below[:, 0::2]  # entries strictly closer than positive i
    equal = below[:, 1::2] - closer  # entries at exactly positive i's distance (itself included)
    rank = (closer + 1).to(torch.float64)
    tie = ((equal > 1) & valid_slot).any(1) | ((pk[:, 1:] == pk[:, :-1]) & valid_slot[:, 1:]).any(1)

    npos = num_pos.to(torch.float64)
    prec = torch.arange(1, maxp + 1, device=dev, dtype=torch.float64)[None, :] / rank
    ap = torch.where(valid_slot, prec, 0.0).sum(1) / npos
    last = rank.gather(1, (num_pos - 1).clamp(min=0)[:, None]).squeeze(1)
    inp = npos / last
    first_rank = rank[:, 0].to(torch.int64)

    # Identity-deduplicated rank: identities whose nearest kept entry beats the first positive.
    nearest = torch.full((c, len(gal.uniques)), inf, dtype=d.dtype, device=dev)
    nearest.scatter_reduce_(1, gal.dense.expand(c, ng), d, reduce="amin", include_self=True)
    dedup_rank = (nearest < pk[:, :1]).sum(1) + 1

    valid = (num_pos > 0).cpu().numpy()
    out = {
        "num_pos": num_pos.cpu().numpy().astype(np.int64),
        "ap": np.where(valid, ap.cpu().numpy(), np.nan),
        "inp": np.where(valid, inp.cpu().numpy(), np.nan),
        "first_rank": np.where(valid, first_rank.cpu().numpy(), 0),
        "dedup_rank": np.where(valid, dedup_rank.cpu().numpy(), 0),
    }
    # Rows with exact distance ties: recompute with the stable-sort definition.
    tie_rows = torch.nonzero(tie & (num_pos > 0)).flatten().cpu().numpy()
    if len(tie_rows):
        rows_d = d[torch.from_numpy(tie_rows).to(dev)].cpu().numpy()
        for j, r in enumerate(tie_rows):
            row = rows_d[j]
            n, a, i, f, dd = score_row(row, int(q_pids[r]), gal.pids, ~np.isfinite(row))
            out["num_pos"][r], out["ap"][r], out["inp"][r] = n, a, i
            out["first_rank"][r], out["dedup_rank"][r] = f, dd
    return QueryScores(valid=valid, num_gallery=ng, **out)


def _count_below(d: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """c x nb counts: per row, the entries of ``d`` strictly below each of the row's bounds.

    Bounds must be ascending per row (rows where they are not come out wrong; the caller redoes
    them). Few bounds: one comparison pass per bound, faster than a binary search (and than one
    3-D comparison, whose reduction is slow on CPU). Many: a batched binary search gives each entry
    its bucket, one bincount counts the buckets.
    """
    c, nb = bounds.shape
    if nb <= _COMPARE_MAX_BOUNDS:
        counts = [(d < bounds[:, k : k + 1]).sum(1, dtype=torch.int32) for k in range(nb)]
        return torch.stack(counts, dim=1).to(torch.int64)
    b = torch.searchsorted(bounds, d, right=True, out_int32=True)  # number of bounds <= entry
    b += (torch.arange(c, device=d.device, dtype=torch.int32) * (nb + 1))[:, None]
    hist = torch.bincount(b.view(-1), minlength=c * (nb + 1)).view(c, nb + 1)
    return hist.cumsum(1)[:, :nb]  # entry < bound k  <=>  its bucket <= k


def _check_removal(
    removal: "RemovalRule | np.ndarray | torch.Tensor | None", nq: int, ng: int, q_cams: object, g_cams: object
) -> "str | torch.Tensor":
    if removal is None:
        return "none"
    if isinstance(removal, str):
        if removal not in REMOVAL_RULES:
            raise ValueError(f"unknown removal rule {removal!r} (choose from {list(REMOVAL_RULES)})")
        if removal != "none" and (q_cams is None or g_cams is None):
            raise ValueError(f"removal rule {removal!r} needs q_cams and g_cams")
        return removal
    mask = torch.as_tensor(removal)
    if mask.dtype != torch.bool or tuple(mask.shape) != (nq, ng):
        raise ValueError(
            f"removal mask must be bool of shape {(nq, ng)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    return mask


class _Ranker:
    """Validated inputs shared by the feature and distance-matrix entry points."""

    def __init__(self, nq: int, ng: int, q_pids: object, g_pids: object, q_cams: object, g_cams: object,
                 removal: object, device: torch.device):
        self.q_pids = _np1d(q_pids, "q_pids")
        g_pids_np = _np1d(g_pids, "g_pids")
        if len(self.q_pids) != nq:
            raise ValueError(f"q_pids has {len(self.q_pids)} entries for {nq} queries")
        if len(g_pids_np) != ng:
            raise ValueError(f"g_pids has {len(g_pids_np)} entries for {ng} gallery items")
        if ng == 0:
            raise ValueError("the gallery is empty")
        qc = None if q_cams is None else _np1d(q_cams, "q_cams")
        gc = None if g_cams is None else _np1d(g_cams, "g_cams")
        if qc is not None and len(qc) != nq:
            raise ValueError(f"q_cams has {len(qc)} entries for {nq} queries")
        if gc is not None and len(gc) != ng:
            raise ValueError(f"g_cams has {len(gc)} entries for {ng} gallery items")
        self.removal = _check_removal(removal, nq, ng, qc, gc)
        self.gal = _Gallery(g_pids_np, gc, device)
        self.q_dense = torch.from_numpy(self.gal.dense_of(self.q_pids)).to(device)
        self.q_cams = None if qc is None else torch.from_numpy(qc).to(device)
        self.device = device

    def block(self, d: torch.Tensor, lo: int, hi: int) -> QueryScores:
        # One cheap pass: NaN or inf anywhere makes the sum non-finite (removal needs finite input).
        if not bool(torch.isfinite(d.sum())):
            raise ValueError("distances contain NaN or infinite values (check the features)")
        rem = self.removal
        if isinstance(rem, torch.Tensor):
            rem = rem[lo:hi].to(d.device)
        cams = None if self.q_cams is None else self.q_cams[lo:hi]
        return _score_block(d, self.q_pids[lo:hi], self.q_dense[lo:hi], cams, self.gal, rem)


def _rows_per_block(ng: int, chunk_size: int | None, memory_budget: int) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size
    return max(1, memory_budget // max(1, ng * _BYTES_PER_PAIR))


def _blocks(nq: int, rows: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    starts = range(0, nq, rows)
    return tqdm(starts, desc=desc, unit="block", disable=not progress or len(starts) < 2, leave=False)


def _as_features(x: object, name: str) -> torch.Tensor:
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x.detach()
    if t.ndim != 2:
        raise ValueError(f"{name} must be N x D, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {t.dtype}")
    if t.device.type == "cpu" and t.dtype != torch.float32:
        t = t.float()  # the CPU path multiplies with numpy's BLAS in float32
    return t


def _pair_features(query: object, gallery: object) -> tuple[torch.Tensor, torch.Tensor]:
    q, g = _as_features(query, "query features"), _as_features(gallery, "gallery features")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query features have dim {q.shape[1]}, gallery features {g.shape[1]}")
    return q, g.to(q.device)


def _distance_block(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """-(q . g) for a block of queries; negating the smaller operand is exact and cheaper."""
    if q.device.type == "cpu":
        # numpy's OpenBLAS sgemm: about twice torch's MKL sgemm on the AMD CPUs we run on.
        qn, gn = q.numpy(), g.numpy()
        if g.shape[0] > q.shape[1]:
            return torch.from_numpy(np.matmul(-qn, gn.T))
        sim = np.matmul(qn, gn.T)
        return torch.from_numpy(np.negative(sim, out=sim))
    return torch.mm(-q, g.T) if g.shape[0] > q.shape[1] else torch.mm(q, g.T).neg_()


def distances(query: "torch.Tensor | np.ndarray", gallery: "torch.Tensor | np.ndarray") -> torch.Tensor:
    """The whole query x gallery distance matrix -(q . g) (for galleries that fit in memory)."""
    q, g = _pair_features(query, gallery)
    return _distance_block(q, g)


def score_features(
    query: "torch.Tensor | np.ndarray",
    gallery: "torch.Tensor | np.ndarray",
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: "RemovalRule | np.ndarray | torch.Tensor | None" = "none",
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
) -> QueryScores:
    """Per-query scores ranking ``gallery`` for each ``query`` by distance -(q . g).

    Features are used as given (L2-normalise them for cosine; concatenated parts give a sum of
    similarities, see mscm.eval.features.fuse_for_similarity). Queries run in blocks of
    ``chunk_size`` rows, or as many as ``memory_budget`` bytes of block work allow; the gallery is
    held once. The work runs on the features' device.
    """
    q, g = _pair_features(query, gallery)
    nq, ng = q.shape[0], g.shape[0]
    ranker = _Ranker(nq, ng, q_pids, g_pids, q_cams, g_cams, removal, q.device)
    rows = _rows_per_block(ng, chunk_size, memory_budget)
    parts = []
    for lo in _blocks(nq, rows, progress, "ranking"):
        hi = min(nq, lo + rows)
        parts.append(ranker.block(_distance_block(q[lo:hi], g), lo, hi))
    return QueryScores.concat(parts) if parts else _empty(ng)


def score_distmat(
    distmat: "torch.Tensor | np.ndarray",
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: "RemovalRule | np.ndarray | torch.Tensor | None" = "none",
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> QueryScores:
    """Per-query scores from a precomputed query x gallery distance matrix (smaller = closer).

    Distances must be finite; express exclusions with ``removal``. The matrix is not modified.
    """
    d_all = torch.as_tensor(distmat) if not isinstance(distmat, torch.Tensor) else distmat.detach()
    if d_all.ndim != 2 or not d_all.is_floating_point():
        raise ValueError(f"distmat must be a 2-D float matrix, got {d_all.dtype} {tuple(d_all.shape)}")
    nq, ng = d_all.shape
    ranker = _Ranker(nq, ng, q_pids, g_pids, q_cams, g_cams, removal, d_all.device)
    rows = _rows_per_block(ng, chunk_size, memory_budget)
    parts = [ranker.block(d_all[lo : lo + rows].clone(), lo, min(nq, lo + rows)) for lo in range(0, nq, rows)]
    return QueryScores.concat(parts) if parts else _empty(ng)


def _empty(ng: int) -> QueryScores:
    z = np.zeros(0, np.int64)
    return QueryScores(np.zeros(0, bool), z, np.zeros(0), np.zeros(0), z, z, ng)


def summarize(scores: QueryScores, cmc: CmcKind = "dedup", max_rank: int = 20) -> Metrics:
    """Average per-query scores into CMC (up to min(max_rank, gallery size)), mAP and mINP.

    ``cmc="dedup"`` is the lineage's "new" CMC (SYSU, LLCM). Its quirk is kept: every query's
    deduplicated CMC is summed (valid or not) and the sum is divided by the number of *valid*
    queries. An invalid query has no kept positive, so its deduplicated CMC is all zeros: the quirk
    adds nothing to the numerator while leaving the query out of the denominator.
    ``cmc="standard"`` averages the plain CMC over valid queries (RegDB).
    """
    if cmc not in CMC_KINDS:
        raise ValueError(f"unknown CMC kind {cmc!r} (choose from {list(CMC_KINDS)})")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    valid = scores.valid
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"no query has a match in the gallery ({scores.num_queries} queries, "
            f"{scores.num_gallery} gallery items): check the identities of the query and gallery sets"
        )
    ks = np.arange(1, min(max_rank, scores.num_gallery) + 1)
    if cmc == "standard":
        curve = (scores.first_rank[valid][:, None] <= ks[None, :]).mean(0)
    else:
        r = scores.dedup_rank[:, None]
        curve = ((r >= 1) & (r <= ks[None, :])).sum(0) / num_valid
    return Metrics(
        cmc=curve.astype(np.float64),
        mAP=float(scores.ap[valid].mean()),
        mINP=float(scores.inp[valid].mean()),
        cmc_kind=cmc,
        num_queries=scores.num_queries,
        num_valid=num_valid,
        num_gallery=scores.num_gallery,
    )


def evaluate_features(
    query: "torch.Tensor | np.ndarray",
    gallery: "torch.Tensor | np.ndarray",
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: "RemovalRule | np.ndarray | torch.Tensor | None" = "none",
    cmc: CmcKind = "dedup",
    max_rank: int = 20,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
) -> Metrics:
    """:func:`score_features` then :func:`summarize`."""
    scores = score_features(
        query, gallery, q_pids, g_pids, q_cams=q_cams, g_cams=g_cams, removal=removal,
        chunk_size=chunk_size, memory_budget=memory_budget, progress=progress,
    )
    return summarize(scores, cmc=cmc, max_rank=max_rank)


def evaluate_distmat(
    distmat: "torch.Tensor | np.ndarray",
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: "RemovalRule | np.ndarray | torch.Tensor | None" = "none",
    cmc: CmcKind = "dedup",
    max_rank: int = 20,
) -> Metrics:
    """:func:`score_distmat` then :func:`summarize`."""
    scores = score_distmat(distmat, q_pids, g_pids, q_cams=q_cams, g_cams=g_cams, removal=removal)
    return summarize(scores, cmc=cmc, max_rank=max_rank)
