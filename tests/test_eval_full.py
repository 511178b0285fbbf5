"""Every protocol end to end on synthetic data written in its dataset's on-disk layout, with an
untrained ResNet-18 MSCMNet at 64x32: reading, image cache, feature extraction, draws, metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mscm.config.schema import EvalConfig, ModelConfig
from mscm.data import read_dataset
from mscm.data.synth import generate_atomic
from mscm.eval import EvalRequest, evaluate_protocols, extract_test_features, full_protocols, open_test_images
from mscm.eval import rank_protocols as rank
from mscm.model import build_model

H, W = 64, 32
BATCH = 256  # one batch per modality: few, large torch ops (cheap on a busy 2-core machine)


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synthetic")
    out = {}
    for layout, ids in (("sysu", 8), ("regdb", 6), ("llcm", 8)):
        out[layout] = base / layout
        generate_atomic(layout, out[layout], ids, seed=0, height=H, width=W, progress=False)
    return out


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18", alb_heads=4), num_classes=6, height=H, width=W).eval()


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def _test_ids(root: Path, name: str) -> list[int]:
    return [
        int(x) for x in (root / "exp" / name if (root / "exp").is_dir() else root / "idx" / name).read_text().split(",")
    ]


def _sysu_expected(root: Path, cams: tuple[int, ...], multi: bool) -> tuple[int, int]:
    """(queries, gallery size) counted from the folders on disk."""
    ids = _test_ids(root, "test_id.txt")
    queries = sum(len(_files(root / f"cam{c}" / f"{p:04d}")) for p in ids for c in (3, 6))
    sizes = [len(_files(root / f"cam{c}" / f"{p:04d}")) for p in ids for c in cams]
    gallery = sum(min(10, n) if multi else 1 for n in sizes if n)
    return queries, gallery


def _check(result, trials: list[int], queries: int, gallery: int) -> None:
    assert [t.trial for t in result.trials] == trials
    for t in result.trials:
        assert (t.num_query, t.num_gallery) == (queries, gallery)
        m = t.metrics
        assert 0 < m["mINP"] <= 1 and 0 < m["mAP"] <= 1
        assert 0 <= m["rank1"] <= m["rank5"] <= m["rank10"] <= m["rank20"] <= 1


def test_full_protocol_sets():
    assert full_protocols("sysu") == ("sysu-all", "sysu-indoor")
    assert full_protocols("regdb") == ("regdb-v2t", "regdb-t2v")
    assert full_protocols("llcm") == ("llcm-i2v", "llcm-v2i")
    with pytest.raises(ValueError, match="unknown dataset"):
        full_protocols("market")


def test_sysu_all_and_indoor_single_and_multi_shot(roots, model, tmp_path):
    images = open_test_images(read_dataset("sysu", roots["sysu"]), H, W, cache_dir=str(tmp_path))
    ds = images.dataset
    # One extraction per modality serves every ranking (evaluate_protocols = extract + rank).
    feats = extract_test_features(model, images, EvalRequest(EvalConfig(batch_size=BATCH)))
    assert feats.protocols == ["sysu-all", "sysu-indoor"]
    single = rank(feats, ds, EvalRequest(EvalConfig(trials=3)))
    multi = rank(feats, ds, EvalRequest(EvalConfig(trials=2, gallery_mode="multi")))
    for name, cams in (("sysu-all", (1, 2, 4, 5)), ("sysu-indoor", (1, 2))):
        _check(single[name], [0, 1, 2], *_sysu_expected(roots["sysu"], cams, multi=False))
        _check(multi[name], [0, 1], *_sysu_expected(roots["sysu"], cams, multi=True))
        assert single[name].cmc_kind == "dedup" and single[name].gallery_mode == "single"
        assert multi[name].gallery_mode == "multi"
    # Trials draw different galleries.
    assert len({tuple(t.cmc) + (t.metrics["mAP"],) for t in single["sysu-all"].trials}) > 1
    # The shared extraction gives what one protocol's own evaluation gives (rows aligned).
    request = EvalRequest(EvalConfig(protocol="sysu-indoor", trials=3, batch_size=BATCH), protocols=("sysu-indoor",))
    alone = evaluate_protocols(model, images, request)
    assert list(alone) == ["sysu-indoor"]
    for a, b in zip(single["sysu-indoor"].trials, alone["sysu-indoor"].trials):
        assert a.metrics == pytest.approx(b.metrics)


@pytest.mark.parametrize("split", [2])  # split 1 (and combining splits): tests/test_eval_cli.py
def test_regdb_both_directions(roots, model, tmp_path, split):
    images = open_test_images(read_dataset("regdb", roots["regdb"], split=split), H, W, cache_dir=str(tmp_path))
    lines = lambda name: len((roots["regdb"] / "idx" / name).read_text().split("\n")) - 1  # noqa: E731
    n_vis, n_ir = lines(f"test_visible_{split}.txt"), lines(f"test_thermal_{split}.txt")
    results = evaluate_protocols(model, images, EvalRequest(EvalConfig(batch_size=BATCH), split=split))
    assert list(results) == ["regdb-v2t", "regdb-t2v"]
    _check(results["regdb-v2t"], [split], n_vis, n_ir)  # one evaluation per split, numbered by it
    _check(results["regdb-t2v"], [split], n_ir, n_vis)
    assert {r.cmc_kind for r in results.values()} == {"standard"}
    with pytest.raises(ValueError, match="RegDB: the request needs the split"):
        evaluate_protocols(model, images, EvalRequest(EvalConfig(batch_size=BATCH)))


def test_llcm_both_directions_with_fusion_and_flip(roots, model, tmp_path):
    root = roots["llcm"]
    images = open_test_images(read_dataset("llcm", root), H, W, cache_dir=str(tmp_path))
    cfg = EvalConfig(trials=2, feature="pool+bn", flip=True, batch_size=BATCH)
    results = evaluate_protocols(model, images, EvalRequest(cfg))
    ids = _test_ids(root, "test_id.txt")
    count = lambda sub, cams: sum(len(_files(root / sub / f"cam{c}" / f"{p:04d}")) for p in ids for c in cams)  # noqa: E731
    folders = lambda sub, cams: sum(bool(_files(root / sub / f"cam{c}" / f"{p:04d}")) for p in ids for c in cams)  # noqa: E731
    vis_cams, nir_cams = range(1, 10), (1, 2, 4, 5, 6, 7, 8, 9)
    _check(results["llcm-i2v"], [0, 1], count("test_nir", nir_cams), folders("test_vis", vis_cams))
    _check(results["llcm-v2i"], [0, 1], count("test_vis", vis_cams), folders("test_nir", nir_cams))
    assert all(r.feature == "pool+bn" and r.flip for r in results.values())


def test_flip_follows_the_authors_scripts_per_protocol_by_default(roots, model, tmp_path):
    """eval.flip null: LLCM VIS->IR flips (testD.py), IR->VIS does not (test.py); each protocol's
    numbers equal those of the run that sets that flip for every protocol."""
    images = open_test_images(read_dataset("llcm", roots["llcm"]), H, W, cache_dir=str(tmp_path))
    run = lambda flip: evaluate_protocols(  # noqa: E731
        model, images, EvalRequest(EvalConfig(trials=2, feature="pool+bn", flip=flip, batch_size=BATCH))
    )
    default, on, off = run(None), run(True), run(False)
    assert default["llcm-v2i"].flip and not default["llcm-i2v"].flip
    assert default["llcm-v2i"].mean == on["llcm-v2i"].mean
    assert default["llcm-i2v"].mean == off["llcm-i2v"].mean
    assert on["llcm-v2i"].mean != off["llcm-v2i"].mean  # the flip does change the ranking here


def test_evaluation_precision_is_fp32_unless_asked_and_autocasts_only_on_cuda():
    from mscm.eval.features import eval_amp_dtype

    assert EvalConfig().precision == "fp32" and EvalConfig().flip is None and not EvalConfig().flip_normalize
    assert eval_amp_dtype(EvalConfig(), "cuda") is None
    assert eval_amp_dtype(EvalConfig(precision="bf16"), "cuda:1") is torch.bfloat16
    assert eval_amp_dtype(EvalConfig(precision="bf16"), "cpu") is None
