"""The data contract shared by readers, loaders, evaluation and the model.

A reader turns a dataset folder (SYSU-MM01, RegDB, LLCM, or synthetic data in one of those layouts)
into a :class:`VIReIDDataset`: flat lists of :class:`ImageRecord` for training (labels relabelled to
0..C-1) and for test (original pids). Protocols (query/gallery selection, single-shot draws) are the
evaluation package's job; readers only say what is on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Modality(IntEnum):
    VISIBLE = 0
    INFRARED = 1

    @classmethod
    def parse(cls, value: str | int | Modality) -> Modality:
        if isinstance(value, Modality):
            return value
        if isinstance(value, int):
            return cls(value)
        names = {
            "visible": cls.VISIBLE,
            "rgb": cls.VISIBLE,
            "vis": cls.VISIBLE,
            "infrared": cls.INFRARED,
            "ir": cls.INFRARED,
            "thermal": cls.INFRARED,
            "nir": cls.INFRARED,
        }
        try:
            return names[value.lower()]
        except KeyError:
            raise ValueError(f"unknown modality {value!r} (use 'visible' or 'infrared')") from None


@dataclass(frozen=True)
class ImageRecord:
    """One image on disk.

    ``pid`` is the dataset's own identity id; ``label`` is the contiguous training label (0..C-1)
    for training records and -1 for test records. ``camid`` is the camera number as the dataset
    names it (SYSU cam1..cam6, LLCM cam1..cam9; RegDB: 1 visible, 2 thermal).
    """

    path: str
    pid: int
    camid: int
    modality: Modality
    label: int = -1


@dataclass
class VIReIDDataset:
    name: str  # "sysu" | "regdb" | "llcm"
    root: str
    train_visible: list[ImageRecord]
    train_infrared: list[ImageRecord]
    test_visible: list[ImageRecord]
    test_infrared: list[ImageRecord]
    num_classes: int
    # Things a user should know about the data that did not stop loading (skipped corrupt files,
    # identities missing a modality): readers fill it, training logs it.
    warnings: list[str] = field(default_factory=list)
    # What the test lists hold: "test" = the dataset's own test split; "val" = training identities
    # held out by ``mscm.data.holdout_identities`` for model selection (the real test split unused).
    split: str = "test"
    # Training ids with images in one modality only (dropped from training; ``data.missing_modality``
    # decides whether the preflight stops on them).
    incomplete_ids: tuple[int, ...] = ()

    def summary(self) -> str:
        ids = lambda recs: len({r.pid for r in recs})  # noqa: E731
        return (
            f"{self.name} at {self.root}: train {self.num_classes} ids, "
            f"{len(self.train_visible)} visible + {len(self.train_infrared)} infrared images; "
            f"{self.split} {ids(self.test_visible)}/{ids(self.test_infrared)} ids, "
            f"{len(self.test_visible)} visible + {len(self.test_infrared)} infrared images"
        )
