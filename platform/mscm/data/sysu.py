"""SYSU-MM01 reader (layout: shared/design/eval-protocols.md, "SYSU-MM01").

``camN/<pid 4 digits>/<file>``; visible cams 1, 2, 4, 5, infrared cams 3, 6; training ids are
``exp/train_id.txt`` + ``exp/val_id.txt``, test ids ``exp/test_id.txt``. Test lists hold every image of
the test ids (visible: all four RGB cams, infrared: cams 3 and 6); protocols pick cameras later.
"""

from __future__ import annotations

from pathlib import Path

from .assemble import assemble, list_images, read_id_file, require_dir, require_root
from .errors import DatasetError
from .records import ImageRecord, Modality, VIReIDDataset

VISIBLE_CAMS = (1, 2, 4, 5)
INFRARED_CAMS = (3, 6)


def _collect(root: Path, pids: list[int]) -> list[ImageRecord]:
    records = []
    for cam in sorted(VISIBLE_CAMS + INFRARED_CAMS):
        modality = Modality.VISIBLE if cam in VISIBLE_CAMS else Modality.INFRARED
        cam_dir = root / f"cam{cam}"
        for pid in pids:
            folder = cam_dir / f"{pid:04d}"
            if not folder.is_dir():  # not every id is seen by every camera: skip, don't fail
                continue
            records += [ImageRecord(str(p), pid, cam, modality) for p in list_images(folder)]
    return records


def read_sysu(root: str | Path) -> VIReIDDataset:
    root = require_root(root, "SYSU-MM01 root")
    for cam in sorted(VISIBLE_CAMS + INFRARED_CAMS):
        require_dir(root / f"cam{cam}", f"SYSU-MM01 camera folder cam{cam}")
    exp = require_dir(root / "exp", "SYSU-MM01 split folder")
    train_ids = sorted(
        set(read_id_file(exp / "train_id.txt", "SYSU-MM01 training id list"))
        | set(read_id_file(exp / "val_id.txt", "SYSU-MM01 validation id list"))
    )
    test_ids = sorted(set(read_id_file(exp / "test_id.txt", "SYSU-MM01 test id list")))
    overlap = set(train_ids) & set(test_ids)
    if overlap:
        raise DatasetError(
            f"{exp}: ids listed both for training (train_id/val_id) and test (test_id): {sorted(overlap)}"
        )
    train, test = _collect(root, train_ids), _collect(root, test_ids)
    seen = {r.camid for r in train + test}
    empty = [f"cam{c}" for c in sorted(VISIBLE_CAMS + INFRARED_CAMS) if c not in seen]
    if empty:  # a camera the layout always has: an interrupted copy, or the wrong folder
        raise DatasetError(
            f"{root}: camera folder{'s' * (len(empty) > 1)} {', '.join(empty)} hold{'s' * (len(empty) == 1)} "
            "no images of the listed ids (expected camN/<pid 4 digits>/<image>)"
        )
    return assemble(
        "sysu",
        root,
        train,
        test,
        expected_train_ids=set(train_ids),
        expected_test_ids=set(test_ids),
    )
