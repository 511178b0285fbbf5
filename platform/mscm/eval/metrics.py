"""Ranking metrics of the VI-ReID lineage: CMC (standard and identity-deduplicated), mAP, mINP.

Definitions: docs/protocols.md, "Metrics, per trial". Distances are -(q . g); each query's
gallery is ranked by ascending distance with a *stable* order, so equal distances keep gallery
order (the lower gallery index ranks first). Gallery entries named by the removal rule are dropped
per query; a query with no positive left is invalid and is skipped for mAP, mINP and the standard
CMC. The reported CMC of SYSU and LLCM is the lineage's identity-deduplicated ("new") CMC.

How it is fast without sorting: a query only needs the ranks of its positives and, for the
deduplicated CMC, how many identities are seen before its first positive.
- rank of positive i = 1 + number of kept gallery entries strictly closer. With few positives
  (single-shot galleries) this is one comparison pass per positive; with many, one batched
  ``searchsorted`` of every distance into the query's sorted positive distances and one
  ``bincount`` give all counts at once.
- deduplicated rank = 1 + number of identities with a kept entry closer than the first positive.
  The gallery columns are grouped by identity (once; galleries that come grouped, like the
  protocols' draws, are used as they are), so one prefix sum of "closer than the first positive"
  along each row, read at the group boundaries, counts them.
Both are exact when no gallery entry is at exactly the distance of a positive. Such ties are
detected (the boundaries interleave each positive distance with its ``nextafter`` so that equal
distances land in their own bucket) and those rows are recomputed with the stable-sort reference
(mscm.eval.reference) in the original gallery order, so the result is always that of a stable sort.

The ranking passes run in numpy on the CPU (single-threaded and steady on a busy machine, where
many small multi-threaded torch reductions are not); distances are computed on the features'
device (numpy's BLAS on the CPU, torch on a GPU) and ranked block by block. Features on a GPU are
ranked there instead (mscm.eval.device_ranking: one stable sort per row, the same scores). Queries are processed
in blocks sized by a memory budget, so a 20k x 200k ranking never holds a 20k x 200k matrix
(bench/eval_metrics.py).
"""

from __future__ import annotations

from collections.abc import Sequence
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
# Bytes per (query, gallery) pair of a distance block (float32); the ranking passes themselves
# work on cache-sized sub-blocks. The budget covers the block and a same-size copy.
_BYTES_PER_PAIR = 8
# Up to this many bounds (2 per positive), counting uses comparison passes (about 0.7 ns per
# distance each, measured on a 2-core AVX2 CPU) instead of a sort (about 15 ns per distance).
_COMPARE_MAX_BOUNDS = 24
# Distances per ranking sub-block: several passes over a sub-block run from the CPU cache.
_SUB_BLOCK = 2**18


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
    if rule not in REMOVAL_RULES:
        raise ValueError(f"unknown removal rule {rule!r} (choose from {list(REMOVAL_RULES)})")
    return rule_mask(rule, qp, _np1d(q_cams, "q_cams"), gp, _np1d(g_cams, "g_cams"))


def rule_mask(rule: str, qp, qc, gp, gc):
    """The removed entries of a named rule other than "none", as a query x gallery boolean array of the
    inputs' kind: numpy arrays here, device tensors in mscm.eval.device_ranking (the one definition)."""
    if rule == "sysu":
        return (qc == SYSU_QUERY_CAM)[:, None] & (gc == SYSU_REMOVED_GALLERY_CAM)[None, :]
    return (qp[:, None] == gp[None, :]) & (qc[:, None] == gc[None, :])  # "same-camera"


class _Gallery:
    """Gallery identities, with the ranking columns grouped by identity.

    ``perm`` maps ranking columns to gallery indices; it is None when the gallery already comes in
    contiguous identity runs (in any identity order), as the protocols' draws and test lists do:
    then ranking columns are gallery indices and no copy is needed to group them.
    """

    def __init__(self, g_pids: np.ndarray, g_cams: np.ndarray | None):
        self.pids, self.size = g_pids, len(g_pids)
        n = len(g_pids)
        run_starts = np.flatnonzero(np.r_[True, g_pids[1:] != g_pids[:-1]])
        run_pids = g_pids[run_starts]
        self.uniques = np.unique(run_pids)
        if len(self.uniques) == len(run_pids):  # one run per identity: already grouped
            self.perm = None
            order = np.argsort(run_pids)
            self.starts = run_starts[order]
            self.counts = np.diff(np.r_[run_starts, n])[order]
            self.boundaries = np.r_[run_starts, n]
        else:
            dense = np.searchsorted(self.uniques, g_pids)
            self.perm = np.argsort(dense, kind="stable")  # within an identity: ascending gallery index
            self.counts = np.bincount(dense, minlength=len(self.uniques))
            self.starts = np.r_[0, np.cumsum(self.counts)[:-1]].astype(np.int64)
            self.boundaries = np.r_[self.starts, n]
        self.cams = None if g_cams is None else (g_cams if self.perm is None else g_cams[self.perm])  # column order
        self.sysu_cols = None if self.cams is None else np.flatnonzero(self.cams == SYSU_REMOVED_GALLERY_CAM)
        # Prefix sums of per-row counts up to n fit in uint16 for galleries below 65,535 (faster).
        self.prefix_dtype = np.uint16 if n < 2**16 - 1 else np.int32

    def dense_of(self, q_pids: np.ndarray) -> np.ndarray:
        """Index into ``uniques`` of each query pid; -1 when the gallery does not hold it."""
        pos = np.minimum(np.searchsorted(self.uniques, q_pids), len(self.uniques) - 1)
        return np.where(self.uniques[pos] == q_pids, pos, -1).astype(np.int64)

    def selection(self, columns: np.ndarray | None) -> np.ndarray | None:
        """Columns of the input matrix to take, in ranking order (None: the input as it is)."""
        if self.perm is None:
            return columns
        return self.perm if columns is None else columns[self.perm]

    def gallery_order(self, row: np.ndarray) -> np.ndarray:
        if self.perm is None:
            return row
        out = np.empty_like(row)
        out[self.perm] = row
        return out


def _score_block(
    d: np.ndarray,
    q_pids: np.ndarray,
    q_dense: np.ndarray,
    q_cams: np.ndarray | None,
    gal: _Gallery,
    removal: str | np.ndarray,
) -> QueryScores:
    """Scores for one block of query rows; ``d`` (c x ng, ranking column order) is modified in place."""
    c, ng = d.shape
    # Removal: removed entries get an infinite distance (kept distances are finite by contract).
    if isinstance(removal, np.ndarray):
        np.putmask(d, removal, d.dtype.type(np.inf))
    elif removal == "sysu":
        rows = np.flatnonzero(q_cams == SYSU_QUERY_CAM)
        if len(rows) and len(gal.sysu_cols):
            d[np.ix_(rows, gal.sysu_cols)] = d.dtype.type(np.inf)
    pk = _positive_distances(d, q_dense, q_cams, gal, removal)
    if pk is None:
        z = np.zeros(c, np.int64)
        nan = np.full(c, np.nan)
        return QueryScores(np.zeros(c, bool), z, nan, nan.copy(), z.copy(), z.copy(), ng)
    out, valid, tie = _rank_scores(d, pk, gal)
    # Rows with exact distance ties: recompute with the stable-sort definition, in gallery order.
    for r in np.flatnonzero(tie & valid):
        row = gal.gallery_order(d[r])
        n, a, i, f, dd = score_row(row, int(q_pids[r]), gal.pids, ~np.isfinite(row))
        out["num_pos"][r], out["ap"][r], out["inp"][r] = n, a, i
        out["first_rank"][r], out["dedup_rank"][r] = f, dd
    return QueryScores(valid=valid, num_gallery=ng, **out)


def _positive_distances(
    d: np.ndarray, q_dense: np.ndarray, q_cams: np.ndarray | None, gal: _Gallery, removal: str | np.ndarray
) -> np.ndarray | None:
    """Each row's distances to its identity's (contiguous) columns, ascending, padded with +inf to the
    block's widest group (removed positives are +inf too); None when no row has a positive."""
    c, ng = d.shape
    inf = d.dtype.type(np.inf)
    has = q_dense >= 0
    qd = np.where(has, q_dense, 0)
    cnt = np.where(has, gal.counts[qd], 0)
    maxp = int(cnt.max())
    if maxp == 0:
        return None
    slots = np.arange(maxp)
    inside = slots[None, :] < cnt[:, None]
    gidx = np.minimum(gal.starts[qd][:, None] + slots[None, :], ng - 1)
    if isinstance(removal, str) and removal == "same-camera":
        r, k = np.nonzero(inside & (gal.cams[gidx] == q_cams[:, None]))
        d[r, gidx[r, k]] = inf
    pk = d[np.arange(c)[:, None], gidx]
    pk[~inside] = inf
    pk.sort(axis=1)
    return pk


def _rank_scores(d: np.ndarray, pk: np.ndarray, gal: _Gallery) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-row positives, AP, INP, first and deduplicated rank from the positives' sorted distances
    ``pk``; returns them with the valid rows and the rows that hold exact distance ties."""
    c, maxp = pk.shape
    inf = d.dtype.type(np.inf)
    slots = np.arange(maxp)
    valid_slot = np.isfinite(pk)
    num_pos = valid_slot.sum(1)
    valid = num_pos > 0
    # Boundaries [p0, next(p0), p1, next(p1), ...]: entries below next(p_i) are those at most p_i,
    # so one count gives both "strictly closer" and "tied" per positive.
    bounds = np.stack([pk, np.nextafter(pk, inf)], axis=2).reshape(c, 2 * maxp)
    below = _count_below(d, bounds)
    closer = below[:, 0::2]  # entries strictly closer than positive i
    equal = below[:, 1::2] - closer  # entries at exactly positive i's distance (itself included)
    rank = (closer + 1).astype(np.float64)
    tie = ((equal > 1) & valid_slot).any(1) | ((pk[:, 1:] == pk[:, :-1]) & valid_slot[:, 1:]).any(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        npos = num_pos.astype(np.float64)
        ap = np.where(valid_slot, (slots + 1.0)[None, :] / rank, 0.0).sum(1) / npos
        inp = npos / rank[np.arange(c), np.maximum(num_pos - 1, 0)]
    # Deduplicated rank: with 0 or 1 entries ahead of the first positive it is 1 or 2; otherwise
    # count the identities ahead (the query's own is not: its nearest entry *is* the first positive).
    first = closer[:, 0]
    dedup = np.minimum(first, 1) + 1
    many = np.flatnonzero(valid & (first > 1))
    if len(many):
        sub = d if len(many) == c else d[many]
        dedup[many] = _identities_below(sub, pk[many, 0], gal) + 1
    out = {
        "num_pos": num_pos.astype(np.int64),
        "ap": np.where(valid, ap, np.nan),
        "inp": np.where(valid, inp, np.nan),
        "first_rank": np.where(valid, first + 1, 0).astype(np.int64),
        "dedup_rank": np.where(valid, dedup, 0).astype(np.int64),
    }
    return out, valid, tie


def _count_below(d: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """c x nb counts: per row, the entries of ``d`` strictly below each of the row's bounds.

    Bounds must be ascending per row (rows where they are not come out wrong; the caller redoes
    them). Few bounds: one comparison pass per bound (summed as uint8: numpy's vectorised add).
    Many: sort each row once, then one batched binary search of the bounds into the sorted rows.
    """
    c, nb = bounds.shape
    if nb <= _COMPARE_MAX_BOUNDS:
        out = np.empty((c, nb), np.int64)
        mask = np.empty(d.shape, bool)
        for k in range(nb):
            np.less(d, bounds[:, k : k + 1], out=mask)
            out[:, k] = mask.view(np.uint8).sum(1, dtype=np.int32)
        return out
    ordered = torch.from_numpy(np.sort(d, axis=1))
    return torch.searchsorted(ordered, torch.from_numpy(np.ascontiguousarray(bounds))).numpy().astype(np.int64)


def _identities_below(d: np.ndarray, threshold: np.ndarray, gal: _Gallery) -> np.ndarray:
    """Per row, the number of identities with an entry strictly below the row's threshold: a prefix
    sum of "below" along the (identity-grouped) row, read at the group boundaries."""
    c, ng = d.shape
    prefix = np.empty((c, ng + 1), gal.prefix_dtype)
    prefix[:, 0] = 0
    np.cumsum(d < threshold[:, None], axis=1, dtype=gal.prefix_dtype, out=prefix[:, 1:])
    at = prefix[:, gal.boundaries]
    return (at[:, 1:] > at[:, :-1]).sum(1)


def _check_removal(
    removal: RemovalRule | np.ndarray | torch.Tensor | None, nq: int, ng: int, q_cams: object, g_cams: object
) -> str | np.ndarray:
    if removal is None:
        return "none"
    if isinstance(removal, str):
        if removal not in REMOVAL_RULES:
            raise ValueError(f"unknown removal rule {removal!r} (choose from {list(REMOVAL_RULES)})")
        if removal != "none" and (q_cams is None or g_cams is None):
            raise ValueError(f"removal rule {removal!r} needs q_cams and g_cams")
        return removal
    mask = removal.detach().cpu().numpy() if isinstance(removal, torch.Tensor) else np.asarray(removal)
    if mask.dtype != np.bool_ or mask.shape != (nq, ng):
        raise ValueError(f"removal mask must be bool of shape {(nq, ng)}, got {mask.dtype} {mask.shape}")
    return mask


class _Ranker:
    """Validated inputs shared by the feature and distance-matrix entry points."""

    def __init__(
        self, nq: int, ng: int, q_pids: object, g_pids: object, q_cams: object, g_cams: object, removal: object
    ):
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
        self.gal = _Gallery(g_pids_np, gc)
        self.q_dense = self.gal.dense_of(self.q_pids)
        self.q_cams, self.g_cams = qc, gc
        self.ng = ng

    def rows(self, d: np.ndarray, lo: int, owned: bool, columns: np.ndarray | None = None) -> list[QueryScores]:
        """Scores of query rows lo.. from their distance rows ``d``: gallery order, or ``columns``
        selecting the gallery from wider rows. ``owned``: ``d`` may be overwritten.

        The passes run on sub-blocks of about ``_SUB_BLOCK`` distances, which stay in the CPU cache.
        """
        sel = self.gal.selection(columns)
        step = max(1, _SUB_BLOCK // self.ng)
        out = []
        for a in range(0, d.shape[0], step):
            part = d[a : a + step]
            if sel is not None:
                part = np.take(part, sel, axis=1)
            elif not owned:
                part = part.copy()
            # Two cheap passes: max/min propagate NaN, and removal needs finite input.
            if not (np.isfinite(part.max()) and np.isfinite(part.min())):
                raise ValueError("distances contain NaN or infinite values (check the features)")
            lo_a, hi_a = lo + a, lo + a + part.shape[0]
            rem = self.removal
            if isinstance(rem, np.ndarray):
                rem = rem[lo_a:hi_a] if self.gal.perm is None else np.take(rem[lo_a:hi_a], self.gal.perm, axis=1)
            cams = None if self.q_cams is None else self.q_cams[lo_a:hi_a]
            out.append(_score_block(part, self.q_pids[lo_a:hi_a], self.q_dense[lo_a:hi_a], cams, self.gal, rem))
        return out


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


def _distance_block(q: torch.Tensor, g: torch.Tensor) -> np.ndarray:
    """-(q . g) for a block of queries, computed on the features' device, as a CPU numpy array."""
    if q.device.type == "cpu":
        # numpy's OpenBLAS sgemm: about twice torch's MKL sgemm on the AMD CPUs we run on.
        qn, gn = q.numpy(), g.numpy()
        if g.shape[0] > q.shape[1]:  # negating the smaller operand is exact and cheaper
            return np.matmul(-qn, gn.T)
        sim = np.matmul(qn, gn.T)
        return np.negative(sim, out=sim)
    return torch.mm(q, g.T).neg_().float().cpu().numpy()


def distances(query: torch.Tensor | np.ndarray, gallery: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The whole query x gallery distance matrix -(q . g) (for galleries that fit in memory), on
    the features' device."""
    q, g = _pair_features(query, gallery)
    if q.device.type == "cpu":
        return torch.from_numpy(_distance_block(q, g))
    return torch.mm(q, g.T).neg_()


def score_features(
    query: torch.Tensor | np.ndarray,
    gallery: torch.Tensor | np.ndarray,
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: RemovalRule | np.ndarray | torch.Tensor | None = "none",
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
    on_device: bool | None = None,
) -> QueryScores:
    """Per-query scores ranking ``gallery`` for each ``query`` by distance -(q . g).

    Features are used as given (L2-normalise them for cosine; concatenated parts give a sum of
    similarities, see mscm.eval.features.fuse_for_similarity). Queries run in blocks of
    ``chunk_size`` rows, or as many as ``memory_budget`` bytes of block work allow; the gallery is
    held once. Distances are computed on the features' device. ``on_device``: rank there too
    (mscm.eval.device_ranking; None = when the features are on a GPU), else on the CPU.
    """
    q, g = _pair_features(query, gallery)
    nq, ng = q.shape[0], g.shape[0]
    ranker = _Ranker(nq, ng, q_pids, g_pids, q_cams, g_cams, removal)
    if (q.device.type != "cpu" if on_device is None else on_device) and nq:
        from .device_ranking import score_on_device

        r = ranker
        return score_on_device(q, g, r.q_pids, r.gal.pids, r.q_cams, r.g_cams, r.removal)
    rows = _rows_per_block(ng, chunk_size, memory_budget)
    parts = []
    for lo in _blocks(nq, rows, progress, "ranking"):
        hi = min(nq, lo + rows)
        parts += ranker.rows(_distance_block(q[lo:hi], g), lo, owned=True)
    return QueryScores.concat(parts) if parts else _empty(ng)


def _as_distmat(distmat: object) -> np.ndarray:
    if isinstance(distmat, torch.Tensor):
        distmat = distmat.detach()
        if not distmat.is_floating_point():
            raise ValueError(f"distmat must be a 2-D float matrix, got {distmat.dtype} {tuple(distmat.shape)}")
        distmat = (distmat if distmat.dtype in (torch.float32, torch.float64) else distmat.float()).cpu().numpy()
    d = np.asarray(distmat)
    if d.ndim != 2 or d.dtype.kind != "f":
        raise ValueError(f"distmat must be a 2-D float matrix, got {d.dtype} {d.shape}")
    return d if d.dtype in (np.float32, np.float64) else d.astype(np.float32)


def score_distmat(
    distmat: torch.Tensor | np.ndarray,
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: RemovalRule | np.ndarray | torch.Tensor | None = "none",
    columns: np.ndarray | Sequence[int] | None = None,
    chunk_size: int | None = None,
    overwrite: bool = False,
) -> QueryScores:
    """Per-query scores from a precomputed distance matrix (smaller = closer).

    The gallery is ``distmat[:, columns]`` when ``columns`` is given (e.g. one trial's draw from a
    matrix over the union of all draws), else the whole matrix; ``g_pids``/``g_cams``/a removal
    mask follow that gallery. Distances must be finite; express exclusions with ``removal``. The
    matrix is not modified unless ``overwrite`` (which saves copying it; its values are then
    undefined). ``chunk_size``: query rows per call of the ranking (results do not depend on it).
    """
    d_all = _as_distmat(distmat)
    nq = d_all.shape[0]
    cols = None
    if columns is not None:
        cols = _np1d(columns, "columns")
        if len(cols) and (cols.min() < 0 or cols.max() >= d_all.shape[1]):
            raise ValueError(f"columns must lie in 0..{d_all.shape[1] - 1}")
    ng = d_all.shape[1] if cols is None else len(cols)
    ranker = _Ranker(nq, ng, q_pids, g_pids, q_cams, g_cams, removal)
    rows = _rows_per_block(ng, chunk_size, DEFAULT_MEMORY_BUDGET)
    owned = overwrite and d_all.flags.writeable
    parts = [p for lo in range(0, nq, rows) for p in ranker.rows(d_all[lo : lo + rows], lo, owned, cols)]
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
    query: torch.Tensor | np.ndarray,
    gallery: torch.Tensor | np.ndarray,
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: RemovalRule | np.ndarray | torch.Tensor | None = "none",
    cmc: CmcKind = "dedup",
    max_rank: int = 20,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
) -> Metrics:
    """:func:`score_features` then :func:`summarize`."""
    scores = score_features(
        query,
        gallery,
        q_pids,
        g_pids,
        q_cams=q_cams,
        g_cams=g_cams,
        removal=removal,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        progress=progress,
    )
    return summarize(scores, cmc=cmc, max_rank=max_rank)


def evaluate_distmat(
    distmat: torch.Tensor | np.ndarray,
    q_pids: object,
    g_pids: object,
    *,
    q_cams: object = None,
    g_cams: object = None,
    removal: RemovalRule | np.ndarray | torch.Tensor | None = "none",
    cmc: CmcKind = "dedup",
    max_rank: int = 20,
) -> Metrics:
    """:func:`score_distmat` then :func:`summarize`."""
    scores = score_distmat(distmat, q_pids, g_pids, q_cams=q_cams, g_cams=g_cams, removal=removal)
    return summarize(scores, cmc=cmc, max_rank=max_rank)
