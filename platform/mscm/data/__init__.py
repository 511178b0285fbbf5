"""Datasets (SYSU-MM01, RegDB, LLCM, synthetic), the decoded-image cache, the quadruple-stream
augmentations, the identity sampler and the training loader.

Heavy pieces (torch) live in ``mscm.data.augment``, ``.sampler`` and ``.loader``; importing this package
only pulls in numpy/PIL-free readers.
"""

from ..datasets import read_dataset
from ..datasets.errors import CorruptImageError, DatasetError
from ..datasets.llcm import read_llcm
from ..datasets.records import ImageRecord, Modality, VIReIDDataset
from ..datasets.regdb import read_regdb
from ..datasets.sysu import read_sysu
from .build import build_dataset, drop_skipped, holdout_identities

__all__ = [
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
