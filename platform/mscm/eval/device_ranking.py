"""Ranking on the features' device (a GPU) for large galleries: the same per-query scores as the
CPU ranker of mscm.eval.metrics, computed with one stable sort per query row on the device.

Per block of query rows: distances -(q . g) on the device; removed entries set to +inf (kept ones are
finite, so removed entries sort last and a stable sort keeps the gallery order of ties, the
definition in docs/protocols.md); then, along each sorted row, the positives' 1-based ranks give AP,
INP and the first rank, and the first position of each identity gives the deduplicated rank. Only
the per-query results come back to the host. Blocks are sized by a device memory budget, so a
20k x 200k ranking never holds the whole matrix (bench/gpu.py).
"""

from __future__ import annotations

import numpy as np
import torch

from .scores import QueryScores

DEFAULT_DEVICE_BUDGET = 4 * 2**30
# Bytes per (query, gallery) pair of a block: distances (4), sort indices (8), sorted identities (8),
# positive mask and its prefix sum (1 + 8), a float temporary (4); rounded up.
_BYTES_PER_PAIR = 40


def rows_per_block(ng: int, identities: int, budget: int) -> int:
    """Query rows per block: the pairs plus one int64 first-position per identity and row."""
    return max(1, budget // (ng * _BYTES_PER_PAIR + identities * 8))


def _removed(rule: str | np.ndarray, lo: int, hi: int, qp, qc, gp, gc) -> torch.Tensor | None:
    """The block's removed entries (c x ng bool on the device), None when nothing is removed."""
    if isinstance(rule, np.ndarray):
        return torch.from_numpy(rule[lo:hi]).to(gp.device)
    if rule == "none":
        return None
    from .metrics import rule_mask

    return rule_mask(rule, qp[lo:hi], qc[lo:hi], gp, gc)


def _block_scores(d: torch.Tensor, qp: torch.Tensor, gp: torch.Tensor, gid: torch.Tensor, n_ids: int):
    """Scores of one block from its distances ``d`` (removed entries +inf), all on the device."""
    c, ng = d.shape
    order = torch.sort(d, dim=1, stable=True).indices
    kept = torch.isfinite(torch.gather(d, 1, order))
    match = (gp[order] == qp[:, None]) & kept
    pos = torch.arange(1, ng + 1, device=d.device).expand(c, ng)
    num_pos = match.sum(1)
    hits = torch.cumsum(match, 1)
    # float64 as on the CPU path, so both give the same AP to the last bit
    ap = torch.where(match, hits.double() / pos, 0.0).sum(1) / num_pos
    inp = num_pos.double() / torch.where(match, pos, 0).amax(1)
    big = ng + 1
    first = torch.where(match, pos, big).amin(1)
    # Deduplicated rank: the identities whose first kept entry is at or before the first positive.
    first_of_id = torch.full((c, n_ids), big, dtype=pos.dtype, device=d.device)
    first_of_id.scatter_reduce_(1, gid[order], torch.where(kept, pos, big), reduce="amin")
    dedup = (first_of_id <= first[:, None]).sum(1)
    valid = num_pos > 0
    zero = torch.zeros_like(first)
    return valid, num_pos, ap, inp, torch.where(valid, first, zero), torch.where(valid, dedup, zero)


def score_on_device(
    q: torch.Tensor,
    g: torch.Tensor,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray | None,
    g_cams: np.ndarray | None,
    removal: str | np.ndarray,
    *,
    budget: int = DEFAULT_DEVICE_BUDGET,
) -> QueryScores:
    """Per-query scores of ``q`` against ``g`` (same device, validated inputs, see
    mscm.eval.metrics.score_features); works on any device, the CPU included."""
    dev = q.device
    qp, gp = torch.from_numpy(q_pids).to(dev), torch.from_numpy(g_pids).to(dev)
    qc = None if q_cams is None else torch.from_numpy(q_cams).to(dev)
    gc = None if g_cams is None else torch.from_numpy(g_cams).to(dev)
    uniques, gid_np = np.unique(g_pids, return_inverse=True)
    gid = torch.from_numpy(gid_np.astype(np.int64)).to(dev)
    nq, ng = q.shape[0], g.shape[0]
    rows = rows_per_block(ng, len(uniques), budget)
    parts: list[list[torch.Tensor]] = []
    for lo in range(0, nq, rows):
        hi = min(nq, lo + rows)
        d = torch.mm(q[lo:hi], g.T).neg_().float()
        if not bool(torch.isfinite(d).all()):  # one host read per block
            raise ValueError("distances contain NaN or infinite values (check the features)")
        removed = _removed(removal, lo, hi, qp, qc, gp, gc)
        if removed is not None:
            d.masked_fill_(removed, float("inf"))
        parts.append(list(_block_scores(d, qp[lo:hi], gp, gid, len(uniques))))
    cols = [torch.cat(c).cpu().numpy() for c in zip(*parts)]
    valid, num_pos, ap, inp, first, dedup = cols
    nan = np.float64("nan")
    return QueryScores(
        valid=valid,
        num_pos=num_pos.astype(np.int64),
        ap=np.where(valid, ap.astype(np.float64), nan),
        inp=np.where(valid, inp.astype(np.float64), nan),
        first_rank=first.astype(np.int64),
        dedup_rank=dedup.astype(np.int64),
        num_gallery=ng,
    )
