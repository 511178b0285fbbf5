"""Dataset readers on generated data in the three real layouts (SYSU-MM01, RegDB with all 10 splits,
LLCM), the validation hold-out, and the bad-input cases: missing folders and index files, listed
images that do not exist, malformed index lines, identities missing a modality."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from data_fixtures import IDENTITIES, copy_dataset, synthetic

from mscm.config.schema import DataConfig, SyntheticConfig
from mscm.data import (
    DatasetError,
    Modality,
    build_dataset,
    holdout_identities,
    read_dataset,
    read_llcm,
    read_regdb,
    read_sysu,
)


def ids_of(path: Path) -> set[int]:
    return {int(t) for t in path.read_text().strip().split(",")}


def check_common(ds):
    """Properties every reader guarantees."""
    train = ds.train_visible + ds.train_infrared
    # contiguous labels 0..C-1, assigned in sorted-pid order, the same in both modalities
    label_of = {}
    for r in train:
        assert label_of.setdefault(r.pid, r.label) == r.label
    assert sorted(label_of.values()) == list(range(ds.num_classes))
    assert [label_of[p] for p in sorted(label_of)] == list(range(ds.num_classes))
    assert {r.pid for r in ds.train_visible} == {r.pid for r in ds.train_infrared}
    assert all(r.modality is Modality.VISIBLE for r in ds.train_visible + ds.test_visible)
    assert all(r.modality is Modality.INFRARED for r in ds.train_infrared + ds.test_infrared)
    assert all(r.label == -1 for r in ds.test_visible + ds.test_infrared)
    assert not {r.pid for r in train} & {r.pid for r in ds.test_visible + ds.test_infrared}
    assert all(Path(r.path).is_file() for r in train + ds.test_visible + ds.test_infrared)
    for records in (ds.train_visible, ds.train_infrared, ds.test_visible, ds.test_infrared):
        assert [r.path for r in records] == sorted(r.path for r in records)
    assert ds.split == "test" and not ds.warnings


# -- SYSU-MM01 ---------------------------------------------------------------------------------
def test_sysu(tmp_path_factory):
    root = synthetic(tmp_path_factory, "sysu")
    ds = read_sysu(root)
    check_common(ds)
    train_ids = ids_of(root / "exp/train_id.txt") | ids_of(root / "exp/val_id.txt")
    test_ids = ids_of(root / "exp/test_id.txt")
    assert {r.pid for r in ds.train_visible} == train_ids and ds.num_classes == len(train_ids)
    assert {r.pid for r in ds.test_infrared} == test_ids
    for r in ds.train_visible + ds.test_visible:
        assert r.camid in (1, 2, 4, 5) and Path(r.path).parts[-3] == f"cam{r.camid}"
        assert Path(r.path).parts[-2] == f"{r.pid:04d}"
    for r in ds.train_infrared + ds.test_infrared:
        assert r.camid in (3, 6) and Path(r.path).parts[-3] == f"cam{r.camid}"
    # every image on disk is read exactly once
    on_disk = sorted(str(p) for p in root.glob("cam*/*/*.jpg"))
    read = sorted(r.path for r in ds.train_visible + ds.train_infrared + ds.test_visible + ds.test_infrared)
    assert read == on_disk


def test_sysu_id_missing_from_a_camera_is_skipped(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "sysu"), tmp_path / "sysu")
    pid = min(ids_of(root / "exp/train_id.txt"))
    removed = [p for p in root.glob(f"cam[1245]/{pid:04d}")]
    assert removed
    for p in removed[:-1]:  # keep one visible camera: the id is still usable
        shutil.rmtree(p)
    ds = read_sysu(root)
    assert {r.camid for r in ds.train_visible if r.pid == pid} == {int(removed[-1].parts[-2][3:])}
    assert not ds.warnings


# -- RegDB -------------------------------------------------------------------------------------
@pytest.mark.parametrize("trial", range(1, 11))
def test_regdb_every_split(tmp_path_factory, trial):
    root = synthetic(tmp_path_factory, "regdb")
    ds = read_regdb(root, trial)
    check_common(ds)
    listed = {}
    for part in ("train", "test"):
        for mod in ("visible", "thermal"):
            lines = (root / "idx" / f"{part}_{mod}_{trial}.txt").read_text().splitlines()
            listed[part, mod] = sorted(str(root / line.split()[0]) for line in lines)
    assert [r.path for r in ds.train_visible] == listed["train", "visible"]
    assert [r.path for r in ds.train_infrared] == listed["train", "thermal"]
    assert [r.path for r in ds.test_visible] == listed["test", "visible"]
    assert [r.path for r in ds.test_infrared] == listed["test", "thermal"]
    assert ds.num_classes == IDENTITIES // 2
    assert {r.camid for r in ds.train_visible + ds.test_visible} == {1}
    assert {r.camid for r in ds.train_infrared + ds.test_infrared} == {2}
    assert all(r.pid == int(Path(r.path).parent.name) for r in ds.train_visible + ds.test_infrared)
    assert Counter(r.pid for r in ds.test_visible) == Counter({p: 10 for p in {r.pid for r in ds.test_visible}})


def test_regdb_trial_out_of_range(tmp_path_factory):
    with pytest.raises(ValueError, match="1..10"):
        read_regdb(synthetic(tmp_path_factory, "regdb"), 11)


# -- LLCM --------------------------------------------------------------------------------------
def test_llcm(tmp_path_factory):
    root = synthetic(tmp_path_factory, "llcm")
    ds = read_llcm(root)
    check_common(ds)
    test_ids = ids_of(root / "idx/test_id.txt")
    assert {r.pid for r in ds.test_visible} == {r.pid for r in ds.test_infrared} == test_ids
    for name, records in (("train_vis.txt", ds.train_visible), ("train_nir.txt", ds.train_infrared)):
        lines = (root / "idx" / name).read_text().splitlines()
        assert sorted(r.path for r in records) == sorted(str(root / line.split()[0]) for line in lines)
    for r in ds.train_visible + ds.train_infrared + ds.test_visible + ds.test_infrared:
        cam, pid = Path(r.path).parts[-3:-1]
        assert cam == f"cam{r.camid}" and int(pid) == r.pid
    assert 3 not in {r.camid for r in ds.test_infrared}
    on_disk = sorted(str(p) for p in root.glob("test_*/cam*/*/*.jpg"))
    assert sorted(r.path for r in ds.test_visible + ds.test_infrared) == on_disk


# -- entry points ------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["sysu", "regdb", "llcm"])
def test_read_dataset_dispatches(tmp_path_factory, layout):
    ds = read_dataset(layout, synthetic(tmp_path_factory, layout))
    assert ds.name == layout and ds.num_classes >= 2


def test_read_dataset_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'market'"):
        read_dataset("market", tmp_path)


def test_build_dataset_generates_synthetic_data_when_root_is_null(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCM_HOME", str(tmp_path))
    cfg = DataConfig(dataset="llcm", root=None, synthetic=SyntheticConfig(identities=5, seed=2, height=32, width=16))
    ds = build_dataset(cfg, progress=False)
    assert Path(ds.root) == tmp_path / "data" / "synthetic" / "llcm-n5-s2-32x16"
    assert ds.name == "llcm" and ds.num_classes >= 2
    cfg = DataConfig(dataset="regdb", root=str(ds.root), regdb_trial=3)
    with pytest.raises(
        DatasetError, match="RegDB index file: expected the file .*train_visible_3.txt"
    ):  # an LLCM folder
        build_dataset(cfg)


def test_holdout_identities(tmp_path_factory):
    ds = read_sysu(synthetic(tmp_path_factory, "sysu"))
    held = holdout_identities(ds, 2, seed=5)
    assert held.split == "val" and held.num_classes == ds.num_classes - 2
    val_ids = {r.pid for r in held.test_visible}
    assert len(val_ids) == 2 and val_ids == {r.pid for r in held.test_infrared}
    assert not val_ids & {r.pid for r in held.train_visible + held.train_infrared}
    assert all(r.label == -1 for r in held.test_visible + held.test_infrared)
    assert sorted({r.label for r in held.train_visible}) == list(range(held.num_classes))
    # all images of the held ids moved, nothing lost, the real test split is not used
    assert len(held.train_visible) + len(held.test_visible) == len(ds.train_visible)
    assert not val_ids & {r.pid for r in ds.test_visible}
    assert holdout_identities(ds, 2, seed=5) == held
    draws = {frozenset(r.pid for r in holdout_identities(ds, 2, seed=s).test_visible) for s in range(6)}
    assert len(draws) > 1  # the draw depends on the seed
    with pytest.raises(ValueError, match="val_identities must be in 1.."):
        holdout_identities(ds, ds.num_classes, seed=0)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layout, remove, message",
    [
        ("sysu", "", "SYSU-MM01 root: expected a folder at"),
        ("sysu", "cam3", "SYSU-MM01 camera folder cam3: expected a folder at .*cam3"),
        ("sysu", "exp", "SYSU-MM01 split folder: expected a folder at .*exp"),
        ("sysu", "exp/test_id.txt", "SYSU-MM01 test id list: expected the file .*exp/test_id.txt, found nothing"),
        ("sysu", "exp/val_id.txt", "SYSU-MM01 validation id list: expected the file .*val_id.txt"),
        ("regdb", "", "RegDB root: expected a folder"),
        ("regdb", "idx", "RegDB index folder: expected a folder at .*idx"),
        ("regdb", "idx/train_thermal_1.txt", "RegDB index file: expected the file .*idx/train_thermal_1.txt"),
        ("regdb", "idx/test_visible_1.txt", "RegDB index file: expected the file .*test_visible_1.txt"),
        ("llcm", "", "LLCM root: expected a folder"),
        ("llcm", "idx/train_nir.txt", "LLCM index file: expected the file .*idx/train_nir.txt"),
        ("llcm", "idx/test_id.txt", "LLCM test id list: expected the file .*idx/test_id.txt"),
        ("llcm", "test_vis", "LLCM test folder test_vis: expected a folder at .*test_vis"),
    ],
)
def test_missing_folder_or_index_file_names_it(tmp_path_factory, tmp_path, layout, remove, message):
    root = copy_dataset(synthetic(tmp_path_factory, layout), tmp_path / layout)
    target = root / remove
    if remove == "":
        root = tmp_path / "nowhere"
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(DatasetError, match=message):
        read_dataset(layout, root)


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatasetError, match="expected a folder at .*f, found a file"):
        read_sysu(tmp_path / "f")


@pytest.mark.parametrize("layout, index", [("regdb", "idx/train_visible_1.txt"), ("llcm", "idx/train_vis.txt")])
def test_listed_image_missing_names_index_line_and_file(tmp_path_factory, tmp_path, layout, index):
    root = copy_dataset(synthetic(tmp_path_factory, layout), tmp_path / layout)
    line3 = (root / index).read_text().splitlines()[2]
    (root / line3.split()[0]).unlink()
    with pytest.raises(DatasetError, match=rf"{index}:3: listed image .*{line3.split()[0]} does not exist"):
        read_dataset(layout, root)


@pytest.mark.parametrize(
    "content, message",
    [
        ("Visible/1/a.bmp\n", r":1: expected '<relative path> <label>'"),
        ("Visible/1/a.bmp zero\n", r":1: label 'zero' is not an integer"),
    ],
)
def test_malformed_index_line(tmp_path_factory, tmp_path, content, message):
    root = copy_dataset(synthetic(tmp_path_factory, "regdb"), tmp_path / "regdb")
    (root / "idx/train_visible_1.txt").write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_regdb(root, 1)


def test_malformed_id_list(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "sysu"), tmp_path / "sysu")
    (root / "exp/test_id.txt").write_text("1,2,x3\n")
    with pytest.raises(DatasetError, match=r"test_id.txt: expected comma-separated integer ids, found 'x3'"):
        read_sysu(root)


def test_sysu_id_in_train_and_test(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "sysu"), tmp_path / "sysu")
    first_train = min(ids_of(root / "exp/train_id.txt"))
    (root / "exp/test_id.txt").write_text((root / "exp/test_id.txt").read_text().strip() + f",{first_train}\n")
    with pytest.raises(DatasetError, match=rf"both for training .* and test .*\[{first_train}\]"):
        read_sysu(root)


def test_training_identity_without_infrared_is_reported_and_not_trained(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "sysu"), tmp_path / "sysu")
    before = read_sysu(root)
    pid = sorted({r.pid for r in before.train_visible})[1]
    for cam in ("cam3", "cam6"):
        shutil.rmtree(root / cam / f"{pid:04d}", ignore_errors=True)
    ds = read_sysu(root)
    assert ds.num_classes == before.num_classes - 1
    assert pid not in {r.pid for r in ds.train_visible}
    assert any(f"no infrared images: {pid}" in w and "dropped 1 training ids" in w for w in ds.warnings), ds.warnings
    check_labels = sorted({r.label for r in ds.train_visible})
    assert check_labels == list(range(ds.num_classes))


def test_identity_without_visible_images_and_empty_listed_id_are_reported(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "llcm"), tmp_path / "llcm")
    index = root / "idx/train_vis.txt"
    lines = index.read_text().splitlines()
    gone = lines[0].split()[0].split("/")[2]
    index.write_text("".join(line + "\n" for line in lines if line.split()[0].split("/")[2] != gone))
    test_ids = ids_of(root / "idx/test_id.txt")
    (root / "idx/test_id.txt").write_text(",".join(map(str, sorted(test_ids | {999}))) + "\n")
    ds = read_llcm(root)
    assert any(f"no visible images: {int(gone)}" in w for w in ds.warnings), ds.warnings
    assert any("listed test ids have no images at all: 999" in w for w in ds.warnings), ds.warnings


def test_test_identity_missing_a_modality_is_reported(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "sysu"), tmp_path / "sysu")
    pid = min(ids_of(root / "exp/test_id.txt"))
    for cam in ("cam3", "cam6"):
        shutil.rmtree(root / cam / f"{pid:04d}", ignore_errors=True)
    ds = read_sysu(root)
    assert pid in {r.pid for r in ds.test_visible}  # kept: the protocol decides, but the user is told
    assert any(f"test ids missing a modality (no infrared images: {pid})" in w for w in ds.warnings), ds.warnings


def test_no_usable_identity_at_all(tmp_path_factory, tmp_path):
    root = copy_dataset(synthetic(tmp_path_factory, "regdb"), tmp_path / "regdb")
    (root / "idx/train_thermal_1.txt").write_text("")
    with pytest.raises(DatasetError, match="no training identity has images in both modalities"):
        read_regdb(root, 1)
