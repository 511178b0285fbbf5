"""Run a protocol: features once for every candidate record, then each trial picks rows.

``evaluate`` is the top level (model -> EvalResult); ``evaluate_protocol`` starts from features,
which is what training loops and tests call when they already hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..config.schema import EvalConfig
from ..data.records import Modality, VIReIDDataset
from .features import IndexedImages, features_for_eval
from .metrics import DEFAULT_MEMORY_BUDGET, distances, score_distmat, score_features, summarize
from .protocols import (
    Candidates, GalleryMode, candidates, check_dataset, get_protocol, records_of, trial_ids, trial_split,
)
from .result import EvalResult, TrialResult

def _pids_cams(records: list, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pids = np.fromiter((records[i].pid for i in idx), dtype=np.int64, count=len(idx))
    cams = np.fromiter((records[i].camid for i in idx), dtype=np.int64, count=len(idx))
    return pids, cams


def evaluate_protocol(
    protocol: str,
    dataset: VIReIDDataset,
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    *,
    trials: "int | Sequence[int]" = 10,
    gallery_mode: GalleryMode = "single",
    feature: str = "bn",
    flip: bool = False,
    max_rank: int = 20,
    pool: Candidates | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
) -> EvalResult:
    """Metrics of ``protocol`` over ``trials`` from features of its candidate records.

    ``query_features`` / ``gallery_features`` are aligned with ``candidates(spec, dataset).query`` /
    ``.gallery`` (pass ``pool`` if you computed it). ``feature``/``flip`` only label the result.
    Drawn galleries share one query x union-of-galleries distance matrix when it fits in
    ``memory_budget``, so trials cost little more than one.
    """
    spec = get_protocol(protocol)
    check_dataset(spec, dataset)
    pool = pool or candidates(spec, dataset)
    for name, feats, idx in (("query", query_features, pool.query), ("gallery", gallery_features, pool.gallery)):
        if feats.ndim != 2 or feats.shape[0] != len(idx):
            raise ValueError(
                f"{name} features must have one row per {spec.name} {name} candidate ({len(idx)}), "
                f"got shape {tuple(feats.shape)}"
            )
    q_records = records_of(dataset, spec.query_modality)
    g_records = records_of(dataset, spec.gallery_modality)
    g_row = np.full(len(g_records), -1, dtype=np.int64)
    g_row[pool.gallery] = np.arange(len(pool.gallery))
    q_row = np.full(len(q_records), -1, dtype=np.int64)
    q_row[pool.query] = np.arange(len(pool.query))

    splits = [trial_split(spec, dataset, t, gallery_mode, pool) for t in trial_ids(spec, trials)]
    union = np.unique(np.concatenate([s.gallery for s in splits]))
    shared_rows = np.unique(np.concatenate([s.query for s in splits]))
    # One distance matrix for every trial when the union is small (SYSU, LLCM draws).
    shared = None
    if len(splits) > 1 and len(shared_rows) * len(union) * 4 <= memory_budget:
        shared = distances(query_features[q_row[shared_rows]], gallery_features[g_row[union]])

    from tqdm.auto import tqdm

    results = []
    for split in tqdm(splits, desc=f"{spec.name} trials", disable=not progress or len(splits) < 2, leave=False):
        q_pids, q_cams = _pids_cams(q_records, split.query)
        g_pids, g_cams = _pids_cams(g_records, split.gallery)
        if shared is not None:
            rows = torch.from_numpy(np.searchsorted(shared_rows, split.query))
            cols = torch.from_numpy(np.searchsorted(union, split.gallery))
            scores = score_distmat(
                shared[rows[:, None], cols[None, :]], q_pids, g_pids, q_cams=q_cams, g_cams=g_cams,
                removal=spec.removal, memory_budget=memory_budget,
            )
        else:
            scores = score_features(
                query_features[q_row[split.query]], gallery_features[g_row[split.gallery]], q_pids, g_pids,
                q_cams=q_cams, g_cams=g_cams, removal=spec.removal, memory_budget=memory_budget,
                progress=progress,
            )
        metrics = summarize(scores, cmc=spec.cmc, max_rank=max_rank)  # type: ignore[arg-type]
        results.append(TrialResult.from_metrics(split.trial, metrics))
    return EvalResult(
        protocol=spec.name, dataset=spec.dataset, gallery_mode=gallery_mode, feature=feature,
        flip=flip, cmc_kind=spec.cmc, trials=results,
    )


def evaluate(
    model: torch.nn.Module,
    dataset: VIReIDDataset,
    eval_cfg: EvalConfig,
    images_visible: Sequence[np.ndarray],
    images_infrared: Sequence[np.ndarray],
    *,
    trials: "int | Sequence[int] | None" = None,
    device: "str | torch.device" = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``model`` on ``eval_cfg.protocol``: one feature extraction, then every trial.

    ``images_visible`` / ``images_infrared`` are aligned with ``dataset.test_visible`` /
    ``dataset.test_infrared`` (only the records the protocol can use are read). ``trials``: None =
    ``eval_cfg.trials``; an int n = trials 0..n-1; or explicit trial numbers.
    """
    spec = get_protocol(eval_cfg.protocol)
    check_dataset(spec, dataset)
    for name, imgs, recs in (("images_visible", images_visible, dataset.test_visible),
                             ("images_infrared", images_infrared, dataset.test_infrared)):
        if len(imgs) != len(recs):
            raise ValueError(f"{name} has {len(imgs)} images for {len(recs)} test records")
    pool = candidates(spec, dataset)
    images = {Modality.VISIBLE: images_visible, Modality.INFRARED: images_infrared}
    qf, gf = (
        features_for_eval(model, IndexedImages(images[m], idx), m, eval_cfg, device=device,
                          amp_dtype=amp_dtype, progress=progress)
        for m, idx in ((spec.query_modality, pool.query), (spec.gallery_modality, pool.gallery))
    )
    # Rank where the model ran: a GPU ranks large galleries far faster than the CPU.
    qf, gf = qf.to(device), gf.to(device)
    return evaluate_protocol(
        spec.name, dataset, qf, gf, trials=eval_cfg.trials if trials is None else trials,
        gallery_mode=eval_cfg.gallery_mode, feature=eval_cfg.feature, flip=eval_cfg.flip, pool=pool,
        progress=progress,
    )
