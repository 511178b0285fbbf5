"""The synthetic dataset generator: real on-disk layouts (incl. index files), determinism per seed,
grey infrared, per-identity appearance that is consistent but not trivially matchable across
modalities, the ``mscm synth`` command and the generate-once folder."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import HEIGHT, IDENTITIES, WIDTH, synthetic
from PIL import Image

from mscm.cli import main as cli_main
from mscm.data import DatasetError, read_dataset
from mscm.data.cache import load_image
from mscm.data.synth import Style, ensure_synthetic, generate, generate_atomic, read_marker

LAYOUTS = ("sysu", "regdb", "llcm")


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".synthetic.json"
    }


def ids_line(path: Path) -> list[int]:
    text = path.read_text()
    assert re.fullmatch(r"\d+(,\d+)*\n", text), f"{path}: not one comma-separated line: {text!r}"
    return [int(t) for t in text.split(",")]


@pytest.fixture(scope="module", params=LAYOUTS)
def layout_root(request, tmp_path_factory):
    return request.param, synthetic(tmp_path_factory, request.param)


def test_sysu_layout(tmp_path_factory):
    root = synthetic(tmp_path_factory, "sysu")
    for cam in range(1, 7):
        assert (root / f"cam{cam}").is_dir()
    train, val, test = (ids_line(root / "exp" / f"{n}_id.txt") for n in ("train", "val", "test"))
    assert sorted(train + val + test) == list(range(1, IDENTITIES + 1))
    images = [p for p in root.rglob("*.jpg")]
    assert images
    for p in images:
        rel = p.relative_to(root).parts
        assert len(rel) == 3 and re.fullmatch(r"cam[1-6]", rel[0]) and re.fullmatch(r"\d{4}", rel[1])
        assert re.fullmatch(r"\d{4}\.jpg", rel[2])
    with Image.open(images[0]) as im:
        assert im.size == (WIDTH, HEIGHT) and im.format == "JPEG"


def test_regdb_layout(tmp_path_factory):
    root = synthetic(tmp_path_factory, "regdb")
    for pid in range(1, IDENTITIES + 1):
        assert len(list((root / "Visible" / str(pid)).glob("*.bmp"))) == 10
        assert len(list((root / "Thermal" / str(pid)).glob("*.bmp"))) == 10
    splits = set()
    for trial in range(1, 11):
        pids = {}
        for part in ("train", "test"):
            for mod, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                lines = (root / "idx" / f"{part}_{mod}_{trial}.txt").read_text().splitlines()
                for line in lines:
                    rel, label = line.split(" ")
                    assert rel.startswith(folder + "/") and (root / rel).is_file()
                    int(label)
                pids[part, mod] = {int(line.split("/")[1]) for line in lines}
                assert len(lines) == 10 * len(pids[part, mod])
        assert pids["train", "visible"] == pids["train", "thermal"]
        assert pids["test", "visible"] == pids["test", "thermal"]
        assert not pids["train", "visible"] & pids["test", "visible"]
        assert len(pids["train", "visible"]) == len(pids["test", "visible"]) == IDENTITIES // 2
        splits.add(frozenset(pids["train", "visible"]))
    assert len(splits) > 1, "the 10 trials should not all be the same split"


def test_llcm_layout(tmp_path_factory):
    root = synthetic(tmp_path_factory, "llcm")
    test_ids = ids_line(root / "idx" / "test_id.txt")
    assert not (root / "test_nir" / "cam3").exists()  # LLCM's NIR side has no camera 3
    assert sorted(p.name for p in (root / "test_vis").iterdir()) == sorted(f"cam{c}" for c in range(1, 10))
    train_ids = set()
    for name in ("train_vis.txt", "train_nir.txt"):
        for line in (root / "idx" / name).read_text().splitlines():
            rel, label = line.split(" ")
            m = re.fullmatch(r"train_(vis|nir)/cam(\d)/(\d{4})/[^/]+\.jpg", rel)
            assert m and (root / rel).is_file(), line
            train_ids.add(int(m.group(3)))
            int(label)
    assert train_ids and not train_ids & set(test_ids)
    for p in (root / "test_nir").rglob("*.jpg"):
        with Image.open(p) as im:
            assert im.mode == "L"  # NIR stored single-channel
        assert int(p.parent.name) in test_ids


def test_same_seed_same_files_other_seed_differs(tmp_path):
    a = generate("llcm", tmp_path / "a", 5, seed=3, height=32, width=16, progress=False)
    generate("llcm", tmp_path / "b", 5, seed=3, height=32, width=16, progress=False)
    generate("llcm", tmp_path / "c", 5, seed=4, height=32, width=16, progress=False)
    da, db, dc = (tree_digest(tmp_path / n) for n in "abc")
    assert da == db
    assert da != dc
    assert a["images"] == sum(1 for k in da if k.endswith(".jpg"))


def test_infrared_is_grey_and_visible_is_not(layout_root):
    layout, root = layout_root
    ds = read_dataset(layout, root)
    for r in ds.train_infrared[:10] + ds.test_infrared[:10]:
        x = load_image(r.path, HEIGHT, WIDTH).astype(int)
        assert np.abs(x[..., 0] - x[..., 1]).max() <= 2 and np.abs(x[..., 0] - x[..., 2]).max() <= 2, r.path
    colour = [
        np.abs(np.diff(load_image(r.path, HEIGHT, WIDTH).astype(int), axis=2)).mean() for r in ds.train_visible[:10]
    ]
    assert min(colour) > 3


def _centre(images: np.ndarray) -> np.ndarray:
    h, w = images.shape[1:3]
    return images[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].reshape(len(images), -1, images.shape[-1])


def _nn_accuracy(query: np.ndarray, q_pid: np.ndarray, gallery: np.ndarray, g_pid: np.ndarray, same_set: bool) -> float:
    d = ((query[:, None] - gallery[None]) ** 2).sum(-1)
    if same_set:
        np.fill_diagonal(d, np.inf)
    return float((g_pid[d.argmin(1)] == q_pid).mean())


def _stats(c: np.ndarray) -> np.ndarray:  # mean and quartiles of each channel over the image centre
    return np.concatenate([c.mean(1), *np.percentile(c, [25, 75], axis=1)], axis=1)


def _load_sysu(root: Path):
    ds = read_dataset("sysu", root)
    vis_recs, ir_recs = ds.train_visible + ds.test_visible, ds.train_infrared + ds.test_infrared
    vis = np.stack([load_image(r.path, HEIGHT, WIDTH) for r in vis_recs]).astype(float)
    ir = np.stack([load_image(r.path, HEIGHT, WIDTH) for r in ir_recs]).astype(float)
    return vis, ir, np.array([r.pid for r in vis_recs]), np.array([r.pid for r in ir_recs])


def _grey_cross_modal(vis: np.ndarray, ir: np.ndarray, v_pid: np.ndarray, i_pid: np.ndarray) -> float:
    """Nearest-neighbour accuracy of infrared queries against visible images turned grey."""
    grey = _centre(vis) @ np.array([0.299, 0.587, 0.114])
    return _nn_accuracy(_stats(_centre(ir)[..., :1]), i_pid, _stats(grey[..., None]), v_pid, False)


def _layout_cross_modal(vis: np.ndarray, ir: np.ndarray, v_pid: np.ndarray, i_pid: np.ndarray) -> float:
    """Nearest-neighbour accuracy of infrared queries against visible ones on the grey-level layout:
    16x8 block means of luminance, each image centred and normalised (cosine similarity)."""

    def layout(x: np.ndarray) -> np.ndarray:
        g = x @ np.array([0.299, 0.587, 0.114])
        n, h, w = g.shape
        g = g.reshape(n, 16, h // 16, 8, w // 8).mean((2, 4)).reshape(n, -1)
        g = g - g.mean(1, keepdims=True)
        return g / (np.linalg.norm(g, axis=1, keepdims=True) + 1e-9)

    return _nn_accuracy(layout(ir), i_pid, layout(vis), v_pid, False)


def test_identity_appearance_is_consistent_but_not_trivially_cross_modal(tmp_path_factory):
    vis, ir, v_pid, i_pid = _load_sysu(synthetic(tmp_path_factory, "sysu"))
    chance = 1 / IDENTITIES
    # Visible: the clothes' colours identify a person far above chance (consistent appearance) ...
    assert _nn_accuracy(_stats(_centre(vis)), v_pid, _stats(_centre(vis)), v_pid, True) > 3 * chance
    # ... and so do infrared intensities among infrared images ...
    assert _nn_accuracy(_stats(_centre(ir)[..., :1]), i_pid, _stats(_centre(ir)[..., :1]), i_pid, True) > 2 * chance
    # ... but matching infrared to visible by grey level is no better than a coin toss (non-trivial).
    assert _grey_cross_modal(vis, ir, v_pid, i_pid) < 3 * chance
    # images of one identity differ (pose, scale, background, light), none is a copy
    same = [
        np.abs(vis[i] - vis[j]).mean() for i in range(len(vis)) for j in range(i + 1, len(vis)) if v_pid[i] == v_pid[j]
    ]
    assert min(same) > 5


EASY = Style(ir_coupling=1.0, clutter=0.0, variation=0.5)  # the smoke recipe's style


def test_easy_style_carries_grey_level_across_modalities_and_varies_less(tmp_path):
    n = 24
    hard = _load_sysu(ensure_synthetic("sysu", n, 0, HEIGHT, WIDTH, root=tmp_path / "hard", progress=False))
    easy = _load_sysu(ensure_synthetic("sysu", n, 0, HEIGHT, WIDTH, style=EASY, root=tmp_path / "easy", progress=False))
    # the same identities and shots, only rendered differently
    assert np.array_equal(hard[2], easy[2]) and np.array_equal(hard[3], easy[3])
    assert _layout_cross_modal(*easy) > max(_layout_cross_modal(*hard), 1 / n) + 3 / n

    def spread(vis: np.ndarray, pid: np.ndarray) -> float:  # mean within-identity pixel difference
        return float(
            np.mean(
                [
                    np.abs(vis[i] - vis[j]).mean()
                    for i in range(len(vis))
                    for j in range(i + 1, len(vis))
                    if pid[i] == pid[j]
                ]
            )
        )

    assert spread(easy[0], easy[2]) < spread(hard[0], hard[2])
    assert read_marker(tmp_path / "easy")["style"] == EASY.as_dict()


def test_style_names_its_folder_and_is_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCM_HOME", str(tmp_path))
    default = ensure_synthetic("sysu", 4, 0, 32, 16, progress=False)
    easy = ensure_synthetic("sysu", 4, 0, 32, 16, style=EASY, progress=False)
    assert Style().tag() == "" and default.name == "sysu-n4-s0-32x16"
    assert easy.name == "sysu-n4-s0-32x16" + EASY.tag() and easy != default
    assert tree_digest(default) != tree_digest(easy)
    with pytest.raises(ValueError, match="ir_coupling"):
        Style(ir_coupling=1.5)
    with pytest.raises(ValueError, match="clutter"):
        Style(clutter=-1)


def test_cli_writes_layout_and_refuses_non_empty(tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        cli_main(
            [
                "synth",
                "--layout",
                "regdb",
                "--out",
                str(out),
                "--identities",
                "4",
                "--seed",
                "1",
                "--height",
                "32",
                "--width",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 80 images of 4 identities" in printed and "regdb at" in printed
    assert read_marker(out)["seed"] == 1
    assert len(list((out / "idx").glob("*.txt"))) == 40
    assert cli_main(["synth", "--layout", "regdb", "--out", str(out), "--identities", "4", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "synth",
                "--layout",
                "regdb",
                "--out",
                str(out),
                "--identities",
                "4",
                "--seed",
                "2",
                "--height",
                "32",
                "--width",
                "16",
                "--quiet",
                "--overwrite",
            ]
        )
        == 0
    )
    assert read_marker(out)["seed"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(layout="market"), "unknown layout"),
        (dict(identities=3), "at least 4 identities"),
        (dict(height=8), "too small"),
    ],
)
def test_generate_rejects_bad_arguments(tmp_path, args, message):
    kw = dict(layout="sysu", identities=4, height=32, width=16) | args
    with pytest.raises(ValueError, match=message):
        generate(kw.pop("layout"), tmp_path / "x", **kw, progress=False)


def test_ensure_synthetic_generates_once_and_regenerates_other_parameters(tmp_path):
    root = tmp_path / "syn"
    ensure_synthetic("sysu", 4, 0, 32, 16, root=root, progress=False)
    marker = root / ".synthetic.json"
    first = marker.stat().st_mtime_ns
    ensure_synthetic("sysu", 4, 0, 32, 16, root=root, progress=False)
    assert marker.stat().st_mtime_ns == first  # reused, not regenerated
    ensure_synthetic("sysu", 5, 0, 32, 16, root=root, progress=False)
    assert read_marker(root)["identities"] == 5
    assert not list(tmp_path.glob(".syn.tmp-*"))  # no temporary folders left behind


def test_ensure_synthetic_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a dataset")
    with pytest.raises(DatasetError, match="not a complete synthetic dataset"):
        ensure_synthetic("sysu", 4, 0, 32, 16, root=tmp_path / "mine", progress=False)
    with pytest.raises(DatasetError, match="not empty"):
        generate_atomic("sysu", tmp_path / "mine", 4, 0, 32, 16, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "not a dataset"
