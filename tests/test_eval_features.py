"""Feature extraction and the top-level evaluate_protocols(), with a tiny real model that has ``embed``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mscm.config.schema import EvalConfig
from mscm.data.imagenet import normalize_uint8
from mscm.datasets import get_protocol
from mscm.datasets.records import ImageRecord, Modality, VIReIDDataset
from mscm.eval.features import extract_features, features_for_eval, fuse_for_similarity
from mscm.eval.full import EvalRequest, evaluate_protocols
from mscm.eval.protocols import candidates
from mscm.eval.runner import evaluate_protocol
from mscm.eval.test_images import TestImages

H, W = 16, 8


class TinyModel(nn.Module):
    """The model contract: embed(images, modality, which) -> L2-normalised features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.neck = nn.BatchNorm1d(6)  # train and eval modes differ: extraction must use eval
        self.modality = nn.Embedding(2, 6)
        self.modes_seen: list[bool] = []

    def embed(self, images: torch.Tensor, modality: Modality, which: str = "bn"):
        self.modes_seen.append(self.training)
        pool = self.conv(images).relu().mean((2, 3)) + self.modality.weight[int(modality)]
        bn = self.neck(pool)
        out = {"pool": F.normalize(pool, dim=1), "bn": F.normalize(bn, dim=1)}
        return (out["pool"], out["bn"]) if which == "both" else out[which]


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)


def test_eval_mode_no_grad_and_restored_mode():
    model = TinyModel().train()
    f = extract_features(model, _images(5), "visible", batch_size=2, progress=False)
    assert model.modes_seen and not any(model.modes_seen)  # every batch ran in eval mode
    assert model.training  # restored
    assert f.shape == (5, 6) and f.dtype == torch.float32 and not f.requires_grad
    model.eval()
    extract_features(model, _images(2), "visible", progress=False)
    assert not model.training


def test_batches_normalisation_and_modality():
    model = TinyModel().eval()
    imgs = _images(7)
    a = extract_features(model, imgs, Modality.INFRARED, batch_size=1, progress=False)
    b = extract_features(model, list(imgs), "ir", batch_size=4, progress=False)
    torch.testing.assert_close(a, b)
    with torch.no_grad():
        want = model.embed(normalize_uint8(torch.from_numpy(imgs)), Modality.INFRARED)
    torch.testing.assert_close(a, want)
    assert not torch.allclose(a, extract_features(model, imgs, "visible", progress=False))
    # amp_dtype only acts on CUDA: on the CPU the result is the float32 one.
    torch.testing.assert_close(a, extract_features(model, imgs, "ir", amp_dtype=torch.bfloat16, progress=False))


def test_flip_tta_is_the_authors_plain_sum_or_renormalised():
    model = TinyModel().eval()
    imgs = _images(3, seed=1)
    summed = extract_features(model, imgs, "visible", which="both", flip=True, progress=False)
    renormed = extract_features(model, imgs, "visible", which="both", flip=True, flip_normalize=True, progress=False)
    x = normalize_uint8(torch.from_numpy(imgs))
    with torch.no_grad():
        plain, mirrored = model.embed(x, Modality.VISIBLE, "both"), model.embed(x.flip(3), Modality.VISIBLE, "both")
    for s, r, p, m in zip(summed, renormed, plain, mirrored):
        torch.testing.assert_close(s, p + m)  # testD.py: feat = model(x) + model(flip(x)), not normalised again
        torch.testing.assert_close(r, F.normalize(p + m, dim=1))
        assert not torch.allclose(s.norm(dim=1), torch.ones(len(s)))
    assert not torch.allclose(renormed[1], plain[1])
    # A mirror-symmetric image gives the same feature with or without the TTA.
    sym = np.concatenate([imgs[:, :, : W // 2], imgs[:, :, : W // 2][:, :, ::-1]], axis=2)
    torch.testing.assert_close(
        extract_features(model, sym, "visible", flip=True, progress=False),
        2 * extract_features(model, sym, "visible", progress=False),
    )


def test_pool_bn_fusion_is_a_sum_of_similarities():
    model = TinyModel().eval()
    qp, qb = extract_features(model, _images(4, 2), "ir", which="both", progress=False)
    gp, gb = extract_features(model, _images(5, 3), "visible", which="both", progress=False)
    fused = fuse_for_similarity([qp, qb]) @ fuse_for_similarity([gp, gb]).T
    torch.testing.assert_close(fused, qp @ gp.T + qb @ gb.T)
    weighted = fuse_for_similarity([qp, qb], [0.1, 0.9]) @ fuse_for_similarity([gp, gb], [0.1, 0.9]).T
    torch.testing.assert_close(weighted, 0.1 * qp @ gp.T + 0.9 * qb @ gb.T)
    cfg = EvalConfig(protocol="llcm-i2v", feature="pool+bn", batch_size=3)
    torch.testing.assert_close(
        features_for_eval(model, _images(4, 2), "ir", cfg, progress=False), fuse_for_similarity([qp, qb])
    )


def test_bad_images_are_named():
    model = TinyModel()
    imgs = [_images(1)[0], np.zeros((H + 2, W, 3), np.uint8)]
    with pytest.raises(ValueError, match="image 1 is 8x18"):
        extract_features(model, imgs, "visible", batch_size=2, progress=False)
    with pytest.raises(ValueError, match="image 0: expected H x W x 3 uint8"):
        extract_features(model, [np.zeros((H, W, 3), np.float32)], "visible", progress=False)
    with pytest.raises(ValueError, match="which must be"):
        extract_features(model, imgs, "visible", which="fc", progress=False)  # type: ignore[arg-type]


class _Guarded:
    """An image source that fails if a record outside ``allowed`` is read."""

    def __init__(self, images: np.ndarray, allowed: set[int]):
        self.images, self.allowed = images, allowed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        assert i in self.allowed, f"record {i} is not used by the protocol"
        return self.images[i]


def _sysu_dataset() -> tuple[VIReIDDataset, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    vis, ir = [], []
    for pid in (1, 2, 3, 4):
        for cam in (1, 2, 4, 5):
            vis += [ImageRecord(f"cam{cam}/{pid:04d}/{k:04d}.jpg", pid, cam, Modality.VISIBLE) for k in range(3)]
        for cam in (3, 6):
            ir += [ImageRecord(f"cam{cam}/{pid:04d}/{k:04d}.jpg", pid, cam, Modality.INFRARED) for k in range(2)]

    # Identity-coloured images with noise, so that the ranking is not trivial.
    def colour(recs):
        return np.stack([np.clip(40 * r.pid + rng.normal(0, 30, (H, W, 3)), 0, 255).astype(np.uint8) for r in recs])

    return VIReIDDataset("sysu", "/sysu", [], [], vis, ir, 0), colour(vis), colour(ir)


def test_evaluate_extracts_once_and_runs_every_trial():
    ds, vis, ir = _sysu_dataset()
    model = TinyModel().train()
    cfg = EvalConfig(protocol="sysu-indoor", trials=3, batch_size=5)
    indoor = {i for i, r in enumerate(ds.test_visible) if r.camid in (1, 2)}
    images = TestImages(ds, _Guarded(vis, indoor), ir)  # cams 4/5 are never read
    result = evaluate_protocols(model, images, EvalRequest(cfg, protocols=("sysu-indoor",)))["sysu-indoor"]
    assert [t.trial for t in result.trials] == [0, 1, 2] and model.training
    assert result.trials[0].num_query == len(ds.test_infrared) and result.trials[0].num_gallery == 8
    # Two visible + one infrared extraction calls' worth of batches, not one per trial.
    assert len(model.modes_seen) == -(-len(indoor) // 5) + -(-len(ds.test_infrared) // 5)
    # Same numbers as ranking features extracted by hand.
    pool = candidates(get_protocol("sysu-indoor"), ds)
    qf = extract_features(model, ir[pool.query], "ir", progress=False)
    gf = extract_features(model, vis[pool.gallery], "visible", progress=False)
    again = evaluate_protocol("sysu-indoor", ds, qf, gf, trials=3)
    assert [t.metrics for t in result.trials] == [pytest.approx(t.metrics) for t in again.trials]
    assert result.feature == "bn" and result.protocol == "sysu-indoor"
    one = evaluate_protocol("sysu-indoor", ds, qf, gf, trials=[7])  # explicit trial numbers
    assert [t.trial for t in one.trials] == [7]
    with pytest.raises(ValueError, match="visible: 2 images for 48 test records"):
        TestImages(ds, vis[:2], ir)
