"""Evaluation: the standard VI-ReID protocols (SYSU-MM01, RegDB, LLCM) and their metrics.

- metrics: CMC (standard and identity-deduplicated), mAP, mINP; vectorised, chunked for large
  galleries (docs/protocols.md).
- protocols: query/gallery selection and seeded gallery draws per trial (the protocols themselves are
  declared by each dataset in mscm.datasets).
- features: batched test-time feature extraction (flip TTA, CUDA autocast).
- runner: ``evaluate_protocol`` (features -> EvalResult).
- test_images: ``open_test_images``, the one way an evaluation opens a dataset's test images.
- full: ``evaluate_protocols(model, images, EvalRequest)``, the one evaluation that training,
  ``mscm evaluate`` and promotion run.
- checkpoint_eval: ``evaluate_checkpoint(s)`` on checkpoint directories -> Report (``mscm evaluate``).
- report: Report (the papers' table, JSON, CMC plot) and RegDB's merge over splits.
- result: EvalResult (mean/std over trials, JSON, text tables, CMC plot).
- reference: a per-query loop implementation used to check the vectorised one.
"""

from ..datasets import PROTOCOL_SPECS, ProtocolSpec, get_protocol
from .checkpoint_eval import EvalOptions, evaluate_checkpoint, evaluate_checkpoints
from .features import extract_features, features_for_eval, fuse_for_similarity
from .full import (
    EvalRequest,
    TestFeatures,
    combine_regdb_splits,
    evaluate_protocols,
    extract_test_features,
    full_protocols,
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
from .protocols import GalleryFolders, candidates, draw_gallery, trial_split
from .report import Report
from .result import EvalResult, TrialResult, format_paper_table, format_table, plot_cmc
from .runner import evaluate_protocol
from .scores import METRIC_KEYS, RANKS, Metrics, QueryScores
from .test_images import TestImages, open_test_images

__all__ = [
    "EvalOptions",
    "EvalRequest",
    "TestImages",
    "evaluate_protocols",
    "open_test_images",
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
    "evaluate_checkpoint",
    "evaluate_checkpoints",
    "evaluate_distmat",
    "evaluate_features",
    "evaluate_protocol",
    "extract_features",
    "extract_test_features",
    "features_for_eval",
    "format_paper_table",
    "format_table",
    "full_protocols",
    "fuse_for_similarity",
    "get_protocol",
    "plot_cmc",
    "rank_protocols",
    "removal_mask",
    "score_distmat",
    "score_features",
    "summarize",
    "trial_split",
]
