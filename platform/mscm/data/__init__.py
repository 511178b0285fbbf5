"""Datasets (SYSU-MM01, RegDB, LLCM, synthetic), the decoded-image cache, the quadruple-stream
augmentations, the identity sampler and the training loader.

Heavy pieces (torch) live in ``mscm.data.augment``, ``.sampler`` and ``.loader``; importing this package
only pulls in numpy/PIL-free readers.
"""

from .build import LAYOUTS, build_dataset, drop_skipped, holdout_identities, read_dataset
from .errors import CorruptImageError, DatasetError
from .llcm import read_llcm
from .records import ImageRecord, Modality, VIReIDDataset
from .regdb import read_regdb
from .sysu import read_sysu

__all__ = [
    "LAYOUTS",
    "CorruptImageError",
    "DatasetError",
    "ImageRecord",
    "Modality",
    "VIReIDDataset",
    "build_dataset",
    "drop_skipped",
    "holdout_identities",
    "read_dataset",
    "read_llcm",
    "read_regdb",
    "read_sysu",
]
