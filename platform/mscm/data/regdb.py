"""RegDB reader (layout: shared/design/eval-protocols.md, "RegDB").

``idx/{train,test}_{visible,thermal}_<trial>.txt`` list ``<relative path> <label>`` lines. The pid is the
integer folder of the path (``Visible/<pid>/<file>``); paths without one fall back to the listed label.
Camera ids: visible 1, thermal 2 (the protocol treats them as two cameras).
"""

from __future__ import annotations

from pathlib import Path

from .assemble import assemble, check_listed_image, read_index_file, require_dir, require_root
from .records import ImageRecord, Modality, VIReIDDataset

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
