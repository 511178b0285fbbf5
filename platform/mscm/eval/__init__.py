"""Evaluation: the standard VI-ReID protocols (SYSU-MM01, RegDB, LLCM) and their metrics.

- metrics: CMC (standard and identity-deduplicated), mAP, mINP; vectorised, chunked for large
  galleries (shared/design/eval-protocols.md, "Metrics").
- protocols: query/gallery selection and seeded gallery draws per trial.
- features: batched test-time feature extraction (flip TTA, CUDA autocast).
- runner: ``evaluate`` (model -> EvalResult) and ``evaluate_protocol`` (features -> EvalResult).
- result: EvalResult (mean/std over trials, JSON, text table, CMC plot).
- reference: a per-query loop implementation used to check the vectorised one.
"""

from .features import extract_features, features_for_eval, fuse_for_similarity
from .metrics import (
    distances, evaluate_distmat, evaluate_features, removal_mask, score_distmat, score_features, summarize,
)
from .protocols import PROTOCOL_SPECS, ProtocolSpec, candidates, draw_gallery, get_protocol, trial_split
from .result import EvalResult, TrialResult, format_table, plot_cmc
from .runner import evaluate, evaluate_protocol
from .scores import METRIC_KEYS, RANKS, Metrics, QueryScores

__all__ = [
    "EvalResult", "METRIC_KEYS", "Metrics", "PROTOCOL_SPECS", "ProtocolSpec", "QueryScores", "RANKS",
    "TrialResult", "candidates", "distances", "draw_gallery", "evaluate", "evaluate_distmat",
    "evaluate_features", "evaluate_protocol", "extract_features", "features_for_eval", "format_table",
    "fuse_for_similarity", "get_protocol", "plot_cmc", "removal_mask", "score_distmat", "score_features",
    "summarize", "trial_split",
]
