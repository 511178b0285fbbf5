"""A straightforward per-query reference for the metrics, written from the definitions in
docs/protocols.md ("Metrics, per trial") with one stable sort per query.

It is the yardstick of the vectorised implementation (tests, bench/eval_metrics.py) and the exact
path that mscm.eval.metrics falls back to for query rows with tied distances.
"""

from __future__ import annotations

import numpy as np

from .scores import CMC_KINDS, Metrics, QueryScores


def score_row(
    dist: np.ndarray, q_pid: int, g_pids: np.ndarray, removed: np.ndarray | None = None
) -> tuple[int, float, float, int, int]:
    """One query: (positives kept, AP, INP, rank of first positive, deduplicated rank).

    Invalid queries (no positive kept) give (0, nan, nan, 0, 0).
    """
    order = np.argsort(dist, kind="stable")  # ties keep gallery order
    if removed is not None:
        order = order[~removed[order]]
    ranked = g_pids[order]
    hits = np.flatnonzero(ranked == q_pid) + 1  # 1-based ranks of the positives
    if len(hits) == 0:
        return 0, float("nan"), float("nan"), 0, 0
    ap = float(np.mean(np.arange(1, len(hits) + 1) / hits))
    inp = len(hits) / float(hits[-1])
    # Identity-deduplicated list (first occurrence of each identity, in rank order): the query
    # identity's position = number of distinct identities ranked up to its first hit.
    dedup_rank = len(set(ranked[: hits[0]].tolist()))
    return len(hits), ap, inp, int(hits[0]), dedup_rank


def reference_scores(
    distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, removed: np.ndarray | None = None
) -> QueryScores:
    """Per-query scores with a Python loop over queries."""
    distmat, q_pids, g_pids = np.asarray(distmat), np.asarray(q_pids), np.asarray(g_pids)
    rows = [
        score_row(distmat[i], int(q_pids[i]), g_pids, None if removed is None else removed[i])
        for i in range(distmat.shape[0])
    ]
    cols = list(zip(*rows)) if rows else [(), (), (), (), ()]
    num_pos = np.asarray(cols[0], np.int64)
    return QueryScores(
        valid=num_pos > 0,
        num_pos=num_pos,
        ap=np.asarray(cols[1], np.float64),
        inp=np.asarray(cols[2], np.float64),
        first_rank=np.asarray(cols[3], np.int64),
        dedup_rank=np.asarray(cols[4], np.int64),
        num_gallery=distmat.shape[1],
    )


def reference_metrics(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    removed: np.ndarray | None = None,
    cmc: str = "dedup",
    max_rank: int = 20,
) -> Metrics:
    """Metrics the way the lineage accumulates them: one CMC curve per query, then averaged."""
    if cmc not in CMC_KINDS:
        raise ValueError(f"unknown CMC kind {cmc!r}")
    s = reference_scores(distmat, q_pids, g_pids, removed)
    length = min(max_rank, s.num_gallery)
    standard, dedup, aps, inps = [], [], [], []
    for i in range(s.num_queries):
        curve = np.zeros(length)
        if 1 <= s.dedup_rank[i] <= length:
            curve[s.dedup_rank[i] - 1 :] = 1
        dedup.append(curve)  # every query, valid or not (the lineage's quirk)
        if not s.valid[i]:
            continue
        curve = np.zeros(length)
        if s.first_rank[i] <= length:
            curve[s.first_rank[i] - 1 :] = 1
        standard.append(curve)
        aps.append(s.ap[i])
        inps.append(s.inp[i])
    num_valid = len(aps)
    if num_valid == 0:
        raise ValueError("no query has a match in the gallery")
    curve = np.sum(dedup, axis=0) / num_valid if cmc == "dedup" else np.mean(standard, axis=0)
    return Metrics(
        cmc=curve,
        mAP=float(np.mean(aps)),
        mINP=float(np.mean(inps)),
        cmc_kind=cmc,
        num_queries=s.num_queries,
        num_valid=num_valid,
        num_gallery=s.num_gallery,
    )
