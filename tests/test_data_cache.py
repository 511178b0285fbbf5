"""The decoded-image cache: contents, reuse, rebuild on file and resolution changes, corrupt images
(default error naming the file; skip option with a count), concurrent builders, pickling."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import HEIGHT, WIDTH, copy_dataset, synthetic
from PIL import Image

from mscm.data import CorruptImageError, drop_skipped, read_sysu
from mscm.data.cache import ImageCache, load_image


@pytest.fixture
def dataset(tmp_path_factory, tmp_path):
    """A private copy of the small SYSU-layout dataset (tests damage files)."""
    return read_sysu(copy_dataset(synthetic(tmp_path_factory, "sysu"), tmp_path / "sysu"))


def corrupt(path: str, how: str = "truncate") -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 3] if how == "truncate" else b"this is not an image")


def test_load_image_resizes_with_lanczos(tmp_path):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
    Image.fromarray(src).save(tmp_path / "a.png")
    Image.fromarray(src[..., 0]).save(tmp_path / "g.png")  # single-channel files come back as RGB
    out = load_image(str(tmp_path / "a.png"), 20, 10)
    assert out.shape == (20, 10, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.asarray(Image.fromarray(src).resize((10, 20), Image.Resampling.LANCZOS)))
    assert np.array_equal(load_image(str(tmp_path / "a.png"), 50, 30), src)  # same size: untouched
    grey = load_image(str(tmp_path / "g.png"), 50, 30)
    assert np.array_equal(grey, np.repeat(src[..., :1], 3, axis=2))


def test_cache_holds_the_decoded_images_in_record_order(dataset, tmp_path):
    records = dataset.train_infrared
    cache = ImageCache(records, 32, 16, tmp_path / "c", progress=False)
    assert len(cache) == len(records) and cache.records == records and cache.skipped == []
    assert cache.array.shape == (len(records), 32, 16, 3) and cache.array.dtype == np.uint8
    for i in (0, len(records) // 2, len(records) - 1):
        assert np.array_equal(cache[i], load_image(records[i].path, 32, 16))
    idx = [3, 0, 3]
    assert np.array_equal(cache.take(idx), np.stack([cache[i] for i in idx]))
    assert cache.data_path.stat().st_size == len(records) * 32 * 16 * 3
    assert not cache.warnings


def test_cache_is_reused(dataset, tmp_path):
    records = dataset.train_visible
    first = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    stamp = (first.data_path.stat().st_ino, first.data_path.stat().st_mtime_ns, first.index_path.stat().st_mtime_ns)
    again = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    assert again.data_path == first.data_path
    assert (
        again.data_path.stat().st_ino,
        again.data_path.stat().st_mtime_ns,
        again.index_path.stat().st_mtime_ns,
    ) == stamp
    # a different record list (e.g. the test images) gets its own cache
    other = ImageCache(dataset.test_visible, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    assert other.data_path != first.data_path and len(other) == len(dataset.test_visible)


def test_cache_rebuilds_when_an_image_file_changes(dataset, tmp_path):
    records = dataset.train_visible
    cache = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    old_row = cache[5].copy()
    inode = cache.data_path.stat().st_ino
    # replace one image with another identity's image (same size and layout, different content)
    Path(records[5].path).write_bytes(Path(records[-1].path).read_bytes())
    st = os.stat(records[-1].path)
    os.utime(records[5].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rebuilt = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    assert rebuilt.data_path.stat().st_ino != inode
    assert np.array_equal(rebuilt[5], load_image(records[-1].path, HEIGHT, WIDTH))
    assert not np.array_equal(rebuilt[5], old_row)
    assert np.array_equal(rebuilt[4], cache[4])


def test_cache_rebuilds_when_only_the_mtime_changes(dataset, tmp_path):
    records = dataset.train_visible[:6]
    cache = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    inode = cache.data_path.stat().st_ino
    os.utime(records[0].path, ns=(0, 10**9))
    assert ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False).data_path.stat().st_ino != inode


def test_cache_at_another_resolution_is_its_own(dataset, tmp_path):
    records = dataset.train_visible
    small = ImageCache(records, 32, 16, tmp_path / "c", progress=False)
    big = ImageCache(records, 48, 24, tmp_path / "c", progress=False)
    assert big.data_path != small.data_path
    assert big.array.shape[1:] == (48, 24, 3) and small.array.shape[1:] == (32, 16, 3)
    assert np.array_equal(big[2], load_image(records[2].path, 48, 24))
    # and the first one is still valid (not rebuilt)
    inode = small.data_path.stat().st_ino
    assert ImageCache(records, 32, 16, tmp_path / "c", progress=False).data_path.stat().st_ino == inode


def test_cache_rebuilds_a_damaged_cache_file(dataset, tmp_path):
    records = dataset.train_visible[:5]
    cache = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    with open(cache.data_path, "r+b") as fh:
        fh.truncate(100)
    again = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    assert np.array_equal(again[4], load_image(records[4].path, HEIGHT, WIDTH))
    cache.index_path.write_text("{not json")
    assert len(ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)) == 5


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_corrupt_image_stops_with_an_error_naming_the_file(dataset, tmp_path, how):
    records = dataset.train_visible
    corrupt(records[7].path, how)
    with pytest.raises(CorruptImageError, match=f"cannot read image {records[7].path}") as info:
        ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    assert info.value.path == records[7].path
    assert not [p for p in (tmp_path / "c").iterdir() if p.suffix in (".u8", ".json")]  # nothing half-built


def test_missing_image_file_is_named(dataset, tmp_path):
    records = dataset.train_visible
    os.unlink(records[2].path)
    with pytest.raises(CorruptImageError, match=f"cannot read image {records[2].path}: FileNotFoundError"):
        ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)


def test_skip_corrupt_leaves_them_out_and_reports_the_count(dataset, tmp_path):
    records = dataset.train_visible
    bad = [records[1].path, records[8].path, records[-1].path]
    for p in bad:
        corrupt(p)
    cache = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", skip_corrupt=True, progress=False)
    assert cache.skipped == bad
    assert len(cache) == len(records) - 3 == len(cache.records)
    assert [r.path for r in cache.records] == [r.path for r in records if r.path not in bad]
    assert cache.warnings and cache.warnings[0].startswith(f"skipped 3 of {len(records)} unreadable images")
    assert bad[0] in cache.warnings[0]
    for i, r in enumerate(cache.records[:4]):  # rows stay aligned with the kept records
        assert np.array_equal(cache[i], load_image(r.path, HEIGHT, WIDTH))
    # reopening reuses the cache and reports the same; without the option it still stops
    again = ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", skip_corrupt=True, progress=False)
    assert again.skipped == bad and again.data_path.stat().st_ino == cache.data_path.stat().st_ino
    with pytest.raises(CorruptImageError, match=rf"{bad[0]}.*3 unreadable files.*skip_corrupt"):
        ImageCache(records, HEIGHT, WIDTH, tmp_path / "c", progress=False)


def test_drop_skipped_keeps_datasets_aligned_and_reports_lost_identities(dataset, tmp_path):
    victim = dataset.train_infrared[0].pid
    bad_ir = [r.path for r in dataset.train_infrared if r.pid == victim]
    bad_vis = dataset.train_visible[-1].path
    for p in bad_ir + [bad_vis]:
        corrupt(p, "garbage")
    caches = [
        ImageCache(recs, HEIGHT, WIDTH, tmp_path / "c", skip_corrupt=True, progress=False)
        for recs in (dataset.train_visible, dataset.train_infrared)
    ]
    out = drop_skipped(dataset, caches)
    assert [r.path for r in out.train_visible] == [r.path for r in caches[0].records]
    assert [r.path for r in out.train_infrared] == [r.path for r in caches[1].records]
    assert out.num_classes == dataset.num_classes  # labels unchanged
    assert any(f"{len(bad_ir) + 1} unreadable images skipped" in w for w in out.warnings), out.warnings
    assert any("without images in one modality" in w and str(victim) in w for w in out.warnings), out.warnings
    assert drop_skipped(dataset, []) is dataset


def test_empty_record_list(tmp_path):
    cache = ImageCache([], 16, 8, tmp_path / "c", progress=False)
    assert len(cache) == 0 and cache.array.shape == (0, 16, 8, 3)


def test_bad_resolution(dataset, tmp_path):
    with pytest.raises(ValueError, match="resolution must be positive"):
        ImageCache(dataset.train_visible, 0, 8, tmp_path)


def test_pickles_as_paths(dataset, tmp_path):
    cache = ImageCache(dataset.train_infrared, HEIGHT, WIDTH, tmp_path / "c", progress=False)
    _ = cache.array  # opened
    blob = pickle.dumps(cache)
    assert len(blob) < cache.array.nbytes // 10  # DataLoader workers get the file path, not the pixels
    clone = pickle.loads(blob)
    assert np.array_equal(clone.take([0, 5]), cache.take([0, 5]))


def _open_in_child(args):
    records, cache_dir = args
    cache = ImageCache(records, HEIGHT, WIDTH, cache_dir, progress=False, threads=1)
    return cache.data_path.stat().st_ino, cache.take([0, len(cache) - 1]).tobytes()


def test_concurrent_processes_build_once(dataset, tmp_path):
    records = dataset.train_visible
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        results = pool.map(_open_in_child, [(records, tmp_path / "c")] * 3)
    inodes = {ino for ino, _ in results}
    assert len(inodes) == 1, "the cache was built more than once"
    assert len({data for _, data in results}) == 1
    left = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert not [n for n in left if ".tmp-" in n], left


def test_open_test_images_leaves_its_input_dataset_alone(dataset, tmp_path):
    """The one factory of evaluation images: a skip_corrupt cache's losses go into the returned dataset only."""
    from mscm.eval import open_test_images

    bad = dataset.test_infrared[2].path
    corrupt(bad)
    before = [r.path for r in dataset.test_infrared]
    images = open_test_images(dataset, HEIGHT, WIDTH, cache_dir=str(tmp_path / "c"), skip_corrupt=True)
    assert [r.path for r in dataset.test_infrared] == before  # the input is unchanged
    assert [r.path for r in images.dataset.test_infrared] == [p for p in before if p != bad]
    assert len(images.infrared) == len(images.dataset.test_infrared) and images.size == (HEIGHT, WIDTH)
    assert len(images.visible) == len(images.dataset.test_visible) == len(dataset.test_visible)
    assert any("unreadable" in w for w in images.dataset.warnings)
