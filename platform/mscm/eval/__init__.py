"""Evaluation: the standard VI-ReID protocols (SYSU-MM01, RegDB, LLCM) and their metrics.

- metrics: CMC (standard and identity-deduplicated), mAP, mINP; vectorised, chunked for large
  galleries (shared/design/eval-protocols.md, "Metrics").
- protocols: query/gallery selection and seeded gallery draws per trial.
- features: batched test-time feature extraction (flip TTA, CUDA autocast).
- runner: ``evaluate_protocol`` (features -> EvalResult).
- full: ``evaluate`` (model -> EvalResult on the configured protocol, for training) and the full
  test protocol of a dataset (``full_protocols``, ``evaluate_full`` on a model,
  ``evaluate_checkpoint(s)`` on checkpoint directories -> Report): what ``mscm evaluate`` and
  promotion run.
- result: EvalResult (mean/std over trials, JSON, text tables, CMC plot).
- reference: a per-query loop implementation used to check the vectorised one.
"""

from .features import extract_features, features_for_eval, fuse_for_similarity
from .full import (
    Report,
    TestFeatures,
    combine_regdb_splits,
    evaluate,
    evaluate_checkpoint,
    evaluate_checkpoints,
    evaluate_full,
    extract_test_features,
    full_protocols,
    load_test_images,
    rank_protocols,
)
from .metrics import (
    distances,
    evaluate_distmat,
    evaluate_features,
    removal_mask,
    score_distmat,
    score_features,
    summarize,
)
from .protocols import (
    PROTOCOL_SPECS,
    GalleryFolders,
    ProtocolSpec,
    candidates,
    draw_gallery,
    get_protocol,
    trial_split,
)
from .result import EvalResult, TrialResult, format_paper_table, format_table, plot_cmc
from .runner import evaluate_protocol
from .scores import METRIC_KEYS, RANKS, Metrics, QueryScores

__all__ = [
    "EvalResult",
    "GalleryFolders",
    "METRIC_KEYS",
    "Metrics",
    "PROTOCOL_SPECS",
    "ProtocolSpec",
    "QueryScores",
    "RANKS",
    "Report",
    "TestFeatures",
    "TrialResult",
    "candidates",
    "combine_regdb_splits",
    "distances",
    "draw_gallery",
    "evaluate",
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "evaluate_distmat",
    "evaluate_features",
    "evaluate_full",
    "evaluate_protocol",
    "extract_features",
    "extract_test_features",
    "features_for_eval",
    "format_paper_table",
    "format_table",
    "full_protocols",
    "fuse_for_similarity",
    "get_protocol",
    "load_test_images",
    "plot_cmc",
    "rank_protocols",
    "removal_mask",
    "score_distmat",
    "score_features",
    "summarize",
    "trial_split",
]
