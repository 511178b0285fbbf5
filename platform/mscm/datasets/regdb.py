"""RegDB reader (layout: docs/protocols.md, "Datasets on disk").

``idx/{train,test}_{visible,thermal}_<trial>.txt`` list ``<relative path> <label>`` lines. The pid is the
integer folder of the path (``Visible/<pid>/<file>``); paths without one fall back to the listed label.
Camera ids: visible 1, thermal 2 (the protocol treats them as two cameras).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .assemble import assemble, check_listed_image, read_index_file, require_dir, require_root
from .records import ImageRecord, Modality, VIReIDDataset
from .spec import DatasetSpec, ProtocolSpec
from .synthetic import Plan, Shot, split_ids

CAMID = {Modality.VISIBLE: 1, Modality.INFRARED: 2}
TRIALS = range(1, 11)


def _pid_of(rel: str, label: int) -> int:
    parts = Path(rel).parts
    if len(parts) >= 3 and parts[-2].isdigit():
        return int(parts[-2])
    return label


def _read(root: Path, name: str, modality: Modality) -> list[ImageRecord]:
    index = root / "idx" / name
    return [
        ImageRecord(str(check_listed_image(root, rel, index, lineno)), _pid_of(rel, label), CAMID[modality], modality)
        for rel, label, lineno in read_index_file(index, "RegDB index file")
    ]


def read_regdb(root: str | Path, trial: int = 1) -> VIReIDDataset:
    if trial not in TRIALS:
        raise ValueError(f"RegDB trial must be 1..10, got {trial}")
    root = require_root(root, "RegDB root")
    require_dir(root / "idx", "RegDB index folder")
    train = _read(root, f"train_visible_{trial}.txt", Modality.VISIBLE) + _read(
        root, f"train_thermal_{trial}.txt", Modality.INFRARED
    )
    test = _read(root, f"test_visible_{trial}.txt", Modality.VISIBLE) + _read(
        root, f"test_thermal_{trial}.txt", Modality.INFRARED
    )
    return assemble("regdb", root, train, test)


# -- its synthetic version -------------------------------------------------------------------


def plan_synthetic_regdb(n: int, seed: int) -> Plan:
    shots = []
    for pid in range(1, n + 1):
        shots += [Shot(f"Visible/{pid}/{pid}_v_{k + 1:02d}.bmp", pid, 1, "rgb", k) for k in range(10)]
        shots += [Shot(f"Thermal/{pid}/{pid}_t_{k + 1:02d}.bmp", pid, 2, "thermal", k) for k in range(10)]
    files = {}
    for trial in range(1, 11):  # one random half/half identity split per trial
        train, test = split_ids(n, 0.5, np.random.default_rng([seed, 5, trial]))
        for part, pids in (("train", train), ("test", test)):
            for folder, name in (("Visible", "visible"), ("Thermal", "thermal")):
                tag = "v" if folder == "Visible" else "t"
                lines = [
                    f"{folder}/{pid}/{pid}_{tag}_{k + 1:02d}.bmp {label}"
                    for label, pid in enumerate(pids)
                    for k in range(10)
                ]
                files[f"idx/{part}_{name}_{trial}.txt"] = "\n".join(lines) + "\n"
    return Plan(shots, files, dirs=("Visible", "Thermal"))


_VIS, _IR = Modality.VISIBLE, Modality.INFRARED
DATASET = DatasetSpec(
    name="regdb",
    title="RegDB",
    read=lambda root, split=1: read_regdb(root, split),
    layout="Visible/<pid>/, Thermal/<pid>/, split lists idx/{train,test}_{visible,thermal}_<1..10>.txt",
    train_classes=206,  # half of the 412 ids per split (Nguyen et al., Sensors 2017)
    # Whole test lists, two "cameras", nothing removed, standard CMC.
    protocols=(
        ProtocolSpec("regdb-v2t", "regdb", "Visible to Thermal", _VIS, _IR, None, None, False, "none", "standard"),
        ProtocolSpec("regdb-t2v", "regdb", "Thermal to Visible", _IR, _VIS, None, None, False, "none", "standard"),
    ),
    plan_synthetic=plan_synthetic_regdb,
    recipe="regdb",
    splits=tuple(TRIALS),
)
