"""LLCM reader (layout: docs/protocols.md, "Datasets on disk").

Training images are listed in ``idx/train_vis.txt`` / ``idx/train_nir.txt`` (``<relative path> <label>``);
test images are every file under ``test_vis/camN/<pid>/`` and ``test_nir/camN/<pid>/`` for the ids of
``idx/test_id.txt``. Camera id = the number after ``cam``, pid = the digits of the next path part (as the
reference's ``split('cam')`` parsing); a training path without that pattern falls back to its label and
camera 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .assemble import (
    assemble,
    camera_folders,
    check_listed_image,
    list_images,
    read_id_file,
    read_index_file,
    require_dir,
    require_root,
)
from .records import ImageRecord, Modality, VIReIDDataset
from .spec import DatasetSpec, ProtocolSpec
from .synthetic import Plan, Shot, id_list, split_ids

_CAM_PID = re.compile(r"cam(\d+)[/\\](\d+)")
FOLDERS = {Modality.VISIBLE: ("train_vis.txt", "test_vis"), Modality.INFRARED: ("train_nir.txt", "test_nir")}


def _train(root: Path, modality: Modality) -> list[ImageRecord]:
    index = root / "idx" / FOLDERS[modality][0]
    out = []
    for rel, label, lineno in read_index_file(index, "LLCM index file"):
        path = check_listed_image(root, rel, index, lineno)
        m = _CAM_PID.search(rel)
        camid, pid = (int(m.group(1)), int(m.group(2))) if m else (0, label)
        out.append(ImageRecord(str(path), pid, camid, modality))
    return out


def _test(root: Path, modality: Modality, ids: list[int]) -> list[ImageRecord]:
    base = require_dir(root / FOLDERS[modality][1], f"LLCM test folder {FOLDERS[modality][1]}")
    out = []
    for cam, cam_dir in camera_folders(base):
        for pid in ids:
            folder = cam_dir / f"{pid:04d}"
            if folder.is_dir():
                out += [ImageRecord(str(p), pid, cam, modality) for p in list_images(folder)]
    return out


def read_llcm(root: str | Path) -> VIReIDDataset:
    root = require_root(root, "LLCM root")
    require_dir(root / "idx", "LLCM index folder")
    test_ids = sorted(set(read_id_file(root / "idx" / "test_id.txt", "LLCM test id list")))
    train = _train(root, Modality.VISIBLE) + _train(root, Modality.INFRARED)
    test = _test(root, Modality.VISIBLE, test_ids) + _test(root, Modality.INFRARED, test_ids)
    return assemble("llcm", root, train, test, expected_test_ids=set(test_ids))


# -- its synthetic version -------------------------------------------------------------------


def plan_synthetic_llcm(n: int, seed: int) -> Plan:
    train, test = split_ids(n, 0.3, np.random.default_rng([seed, 0]))
    train_set = set(train)
    cams = {"rgb": tuple(range(1, 10)), "nir": (1, 2, 4, 5, 6, 7, 8, 9)}  # LLCM has no NIR cam3
    shots, index = [], {"rgb": [], "nir": []}
    for pid in range(1, n + 1):
        rng = np.random.default_rng([seed, 4, pid])
        part = "train" if pid in train_set else "test"
        for kind, folder in (("rgb", "vis"), ("nir", "nir")):
            chosen = sorted(int(c) for c in rng.choice(cams[kind], rng.integers(2, 5), replace=False))
            for cam in chosen:
                for k in range(rng.integers(3, 6)):
                    rel = f"{part}_{folder}/cam{cam}/{pid:04d}/{pid:04d}_c{cam:02d}_{k + 1:03d}.jpg"
                    shots.append(Shot(rel, pid, cam, kind, k, gray=kind == "nir"))
                    if part == "train":
                        index[kind].append((rel, train.index(pid)))
    files = {
        "idx/train_vis.txt": "".join(f"{rel} {label}\n" for rel, label in index["rgb"]),
        "idx/train_nir.txt": "".join(f"{rel} {label}\n" for rel, label in index["nir"]),
        "idx/test_id.txt": id_list(test) + "\n",
    }
    rng = np.random.default_rng([seed, 6])
    low = frozenset((c, "rgb") for c in cams["rgb"] if rng.random() < 0.6)  # LLCM: low-light visible cameras
    dirs = tuple(
        f"{part}_{folder}/cam{c}"
        for part in ("train", "test")
        for kind, folder in (("rgb", "vis"), ("nir", "nir"))
        for c in cams[kind]
    )
    return Plan(shots, files, low, dirs)


_VIS, _IR = Modality.VISIBLE, Modality.INFRARED
_VIS_CAMS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
_NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)  # test_nir has no cam3
DATASET = DatasetSpec(
    name="llcm",
    title="LLCM",
    read=lambda root, split=1: read_llcm(root),
    layout="{train,test}_{vis,nir}/camN/<pid>/<image>, idx/train_{vis,nir}.txt, idx/test_id.txt",
    train_classes=713,  # Zhang and Wang, CVPR 2023
    # Single-shot gallery from the other modality; same pid + same camera removed.
    protocols=(
        ProtocolSpec("llcm-i2v", "llcm", "IR to VIS", _IR, _VIS, _NIR_CAMS, _VIS_CAMS, True, "same-camera", "dedup"),
        # testD.py, the authors' VIS->IR script, adds flip TTA; test.py (IR->VIS, SYSU, RegDB) does not.
        ProtocolSpec(
            "llcm-v2i", "llcm", "VIS to IR", _VIS, _IR, _VIS_CAMS, _NIR_CAMS, True, "same-camera", "dedup", flip=True
        ),
    ),
    plan_synthetic=plan_synthetic_llcm,
    recipe="llcm",
)
