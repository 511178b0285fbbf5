"""Run a protocol from features of its candidate records: each trial picks rows.

``evaluate_protocol`` starts from features; the model-level entry point (``evaluate_protocols``)
is in mscm.eval.full.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..datasets import get_protocol
from ..datasets.records import VIReIDDataset
from .metrics import DEFAULT_MEMORY_BUDGET, distances, score_distmat, score_features, summarize
from .protocols import (
    Candidates,
    GalleryFolders,
    GalleryMode,
    TrialSplit,
    candidates,
    check_dataset,
    records_of,
    trial_ids,
    trial_split,
)
from .rerank import RerankSettings, rerank_distances
from .result import EvalResult, TrialResult
from .scores import QueryScores


def _pids_cams(records: list) -> tuple[np.ndarray, np.ndarray]:
    pids = np.fromiter((r.pid for r in records), dtype=np.int64, count=len(records))
    cams = np.fromiter((r.camid for r in records), dtype=np.int64, count=len(records))
    return pids, cams


def _check_features(name: str, query: torch.Tensor, gallery: torch.Tensor, pool: Candidates) -> None:
    for part, feats, idx in (("query", query, pool.query), ("gallery", gallery, pool.gallery)):
        if feats.ndim != 2 or feats.shape[0] != len(idx):
            raise ValueError(
                f"{part} features must have one row per {name} {part} candidate ({len(idx)}), "
                f"got shape {tuple(feats.shape)}"
            )


def _row_of(n: int, indices: np.ndarray) -> np.ndarray:
    """Each record's row among the candidates' features, -1 for records that are not candidates."""
    row = np.full(n, -1, dtype=np.int64)
    row[indices] = np.arange(len(indices))
    return row


def evaluate_protocol(
    protocol: str,
    dataset: VIReIDDataset,
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    *,
    trials: int | Sequence[int] = 10,
    gallery_mode: GalleryMode = "single",
    feature: str = "bn",
    flip: bool = False,
    max_rank: int = 20,
    pool: Candidates | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
    rerank: RerankSettings | None = None,
) -> EvalResult:
    """Metrics of ``protocol`` over ``trials`` from features of its candidate records.

    ``query_features`` / ``gallery_features`` are aligned with ``candidates(spec, dataset).query`` /
    ``.gallery`` (pass ``pool`` if you computed it). ``feature``/``flip`` only label the result.
    Drawn galleries (SYSU, LLCM) share one distance matrix between the queries and the union of the
    trials' galleries when it fits in ``memory_budget``, so ten trials cost about one matrix product.
    ``rerank``: rank each trial by k-reciprocal re-ranked distances (:mod:`mscm.eval.rerank`) instead.
    RegDB has one split per dataset object: its single trial is numbered by ``trials`` (pass the
    split number).
    """
    spec = get_protocol(protocol)
    check_dataset(spec, dataset)
    pool = pool or candidates(spec, dataset)
    _check_features(spec.name, query_features, gallery_features, pool)
    q_records, g_records = records_of(dataset, spec.query_modality), records_of(dataset, spec.gallery_modality)
    q_row, g_row = _row_of(len(q_records), pool.query), _row_of(len(g_records), pool.gallery)
    folders = GalleryFolders(g_records, spec.gallery_cams) if spec.drawn_gallery else None
    splits = [trial_split(spec, dataset, t, gallery_mode, pool, folders) for t in trial_ids(spec, trials)]
    q_info, g_info = _pids_cams(q_records), _pids_cams(g_records)
    if rerank is not None:
        bar = tqdm(splits, desc=f"{spec.name} re-ranking", disable=not progress, leave=False)
        parts = ((query_features, gallery_features), (q_row, g_row), (q_info, g_info))
        scores = [_reranked(s, rerank, *parts, spec.removal) for s in bar]
    else:
        rows = (splits, query_features, gallery_features, q_row, g_row, q_info, g_info, spec.removal)
        scores = _score_splits(*rows, memory_budget, progress, spec.name)
    results = [
        TrialResult.from_metrics(split.trial, summarize(s, cmc=spec.cmc, max_rank=max_rank))  # type: ignore[arg-type]
        for split, s in zip(splits, scores)
    ]
    return EvalResult(
        protocol=spec.name,
        dataset=spec.dataset,
        gallery_mode=gallery_mode,
        feature=feature,
        flip=flip,
        cmc_kind=spec.cmc,
        trials=results,
    )


def _reranked(split: TrialSplit, settings: RerankSettings, feats: tuple, rows: tuple, info: tuple, removal: str):
    """One trial's queries and gallery re-ranked together (the gallery differs per draw)."""
    (qf, gf), (q_row, g_row), ((q_pids, q_cams), (g_pids, g_cams)) = feats, rows, info
    distmat = rerank_distances(qf[q_row[split.query]].cpu(), gf[g_row[split.gallery]].cpu(), settings)
    q, g = split.query, split.gallery
    return score_distmat(distmat, q_pids[q], g_pids[g], q_cams=q_cams[q], g_cams=g_cams[g], removal=removal)


def _score_splits(
    splits: list[TrialSplit],
    qf: torch.Tensor,
    gf: torch.Tensor,
    q_row: np.ndarray,
    g_row: np.ndarray,
    q_info: tuple[np.ndarray, np.ndarray],
    g_info: tuple[np.ndarray, np.ndarray],
    removal: str,
    memory_budget: int,
    progress: bool,
    name: str,
) -> list[QueryScores]:
    """Per-query scores of every split (the metrics are the same whichever path runs)."""
    (q_pids, q_cams), (g_pids, g_cams) = q_info, g_info
    query = splits[0].query
    union = np.unique(np.concatenate([s.gallery for s in splits]))
    bar = lambda: tqdm(splits, desc=f"{name} trials", disable=not progress or len(splits) < 2, leave=False)  # noqa: E731
    if (
        qf.device.type == "cpu"  # on a GPU every draw ranks there (mscm.eval.device_ranking)
        and len(splits) > 1
        and all(np.array_equal(s.query, query) for s in splits)
        and len(query) * len(union) * 4 <= memory_budget
    ):
        # One distance matrix to the union of the draws; each trial ranks its own columns.
        shared = distances(qf[q_row[query]], gf[g_row[union]]).float().cpu().numpy()
        return [
            score_distmat(
                shared,
                q_pids[query],
                g_pids[s.gallery],
                q_cams=q_cams[query],
                g_cams=g_cams[s.gallery],
                removal=removal,
                columns=np.searchsorted(union, s.gallery),
            )
            for s in bar()
        ]
    return [
        score_features(
            qf[q_row[s.query]],
            gf[g_row[s.gallery]],
            q_pids[s.query],
            g_pids[s.gallery],
            q_cams=q_cams[s.query],
            g_cams=g_cams[s.gallery],
            removal=removal,
            memory_budget=memory_budget,
            progress=progress,
        )
        for s in bar()
    ]
