"""LLCM reader (layout: shared/design/eval-protocols.md, "LLCM").

Training images are listed in ``idx/train_vis.txt`` / ``idx/train_nir.txt`` (``<relative path> <label>``);
test images are every file under ``test_vis/camN/<pid>/`` and ``test_nir/camN/<pid>/`` for the ids of
``idx/test_id.txt``. Camera id = the number after ``cam``, pid = the digits of the next path part (as the
reference's ``split('cam')`` parsing); a training path without that pattern falls back to its label and
camera 0.
"""

from __future__ import annotations

import re
from pathlib import Path

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
