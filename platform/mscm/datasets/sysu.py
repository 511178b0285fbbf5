"""SYSU-MM01 reader (layout: docs/protocols.md, "Datasets on disk").

``camN/<pid 4 digits>/<file>``; visible cams 1, 2, 4, 5, infrared cams 3, 6; training ids are
``exp/train_id.txt`` + ``exp/val_id.txt``, test ids ``exp/test_id.txt``. Test lists hold every image of
the test ids (visible: all four RGB cams, infrared: cams 3 and 6); protocols pick cameras later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .assemble import assemble, list_images, read_id_file, require_dir, require_root
from .errors import DatasetError
from .records import ImageRecord, Modality, VIReIDDataset
from .spec import DatasetSpec, ProtocolSpec
from .synthetic import Plan, Shot, id_list, some_cameras, split_ids

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


# -- its synthetic version -------------------------------------------------------------------


def plan_synthetic_sysu(n: int, seed: int) -> Plan:
    train, test = split_ids(n, 0.25, np.random.default_rng([seed, 0]))
    cut = round(len(train) * 0.25)
    val, train = sorted(train[:cut]), sorted(train[cut:])  # SYSU trains on train_id + val_id
    shots = []
    for pid in range(1, n + 1):
        rng = np.random.default_rng([seed, 4, pid])
        cams = some_cameras(rng, (1, 2, 4, 5), 0.75) + some_cameras(rng, (3, 6), 0.8)
        for cam in sorted(cams):
            kind = "nir" if cam in (3, 6) else "rgb"
            shots += [Shot(f"cam{cam}/{pid:04d}/{k + 1:04d}.jpg", pid, cam, kind, k) for k in range(rng.integers(4, 7))]
    files = {
        "exp/train_id.txt": id_list(train) + "\n",
        "exp/val_id.txt": id_list(val) + "\n",
        "exp/test_id.txt": id_list(test) + "\n",
    }
    return Plan(shots, files, dirs=tuple(f"cam{c}" for c in range(1, 7)))


def _protocol(name: str, title: str, gallery_cams: tuple[int, ...]) -> ProtocolSpec:
    # Query = IR cams 3 and 6 in both modes; cam3 queries drop cam2 gallery images (rule "sysu").
    return ProtocolSpec(name, "sysu", title, _IR, _VIS, (3, 6), gallery_cams, True, "sysu", "dedup")


_VIS, _IR = Modality.VISIBLE, Modality.INFRARED
DATASET = DatasetSpec(
    name="sysu",
    title="SYSU-MM01",
    read=lambda root, split=1: read_sysu(root),
    layout="camN/<pid 4 digits>/<image>, ids in exp/{train,val,test}_id.txt",
    train_classes=395,  # train_id + val_id (Wu et al., ICCV 2017)
    protocols=(
        _protocol("sysu-all", "All Search", (1, 2, 4, 5)),
        _protocol("sysu-indoor", "Indoor Search", (1, 2)),
    ),
    plan_synthetic=plan_synthetic_sysu,
    recipe="sysu",
)
