"""The quadruple-stream augmentations (docs/model.md, "The four streams' augmentations"): each augmentation's
statistics over many per-sample draws, exactness against PIL where the reference used PIL, p = 0 as
the identity, the four pipelines, and reproducibility from a seeded generator."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from mscm.config.schema import AugmentConfig
from mscm.data.augment import (
    GRAY_WEIGHTS,
    QuadAugment,
    adaptive_gray,
    adjust_brightness,
    channel_exchange,
    channel_scale,
    pad_crop_flip,
    random_brightness,
    random_erasing,
    random_grayscale,
)
from mscm.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, normalize_uint8

N = 3000  # draws per statistic: binomial std of a fraction <= 0.0092, tolerances are >= 4 std
TOL = 0.04
OFF = AugmentConfig(
    flip_p=0,
    pad=0,
    grayscale_p=0,
    erasing_p=0,
    channel_exchange_p=0,
    adaptive_gray_p=0,
    channel_scale_p=0,
    brightness=0,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def u8(b: int, h: int = 16, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, h, w), generator=gen(seed), dtype=torch.uint8)


def floats(b: int, h: int = 16, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=gen(seed))


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).flatten(1).any(1)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x * std + mean) * 255


# -- p = 0 is the identity -------------------------------------------------------------------------
def test_every_stream_is_plain_normalisation_when_everything_is_off():
    vis, ir = u8(64, seed=1), u8(64, seed=2)
    views = QuadAugment(OFF)(vis, ir, gen())
    expected = [normalize_uint8(vis)] * 2 + [normalize_uint8(ir)] * 2
    assert len(views) == 4
    for v, e in zip(views, expected):
        assert torch.equal(v, e)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, g: random_grayscale(x, 0.0, g),
        lambda x, g: random_brightness(x, 0.0, g),
        lambda x, g: pad_crop_flip(x, 0, 0.0, g),
    ],
)
def test_pixel_augmentations_at_zero_are_identity(fn):
    x = u8(256)
    assert torch.equal(fn(x, gen()), x)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, g: random_erasing(x, 0.0, (0.02, 0.4), 0.3, (0.4914, 0.4822, 0.4465), g),
        lambda x, g: channel_exchange(x, 0.0, g),
        lambda x, g: adaptive_gray(x, 0.0, g),
        lambda x, g: channel_scale(x, 0.0, (0.01, 0.5), g),
    ],
)
def test_tensor_augmentations_at_zero_are_identity(fn):
    x = floats(256)
    assert torch.equal(fn(x, gen()), x)


# -- random erasing --------------------------------------------------------------------------------
def reference_erasing_box(h: int, w: int, p: float, area: tuple[float, float], r1: float, rnd: random.Random):
    """ChannelRandomErasing as docs/model.md, "The four streams' augmentations" describes the released code: the box
    (top, left, height, width) it erases, or None."""
    if rnd.uniform(0, 1) > p:
        return None
    for _ in range(100):
        target = rnd.uniform(*area) * h * w
        ratio = rnd.uniform(r1, 1 / r1)
        eh, ew = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if ew < w and eh < h:
            return rnd.randint(0, h - eh), rnd.randint(0, w - ew), eh, ew
    return None


def boxes_of(mask: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    out = []
    for m in mask:
        if not m.any():
            out.append(None)
            continue
        rows, cols = torch.nonzero(m.any(1)).flatten(), torch.nonzero(m.any(0)).flatten()
        box = (int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
        assert m[box[0] : box[0] + box[2], box[1] : box[1] + box[3]].all() and m.sum() == box[2] * box[3], (
            "not a rectangle"
        )
        out.append(box)
    return out


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_random_erasing_statistics_match_the_reference(p):
    h, w, area, r1 = 24, 12, (0.02, 0.4), 0.3
    fill = (0.4914, 0.4822, 0.4465)
    x = floats(N, h, w) + 10  # far from the fill value, so erased pixels are exactly the fill ones
    out = random_erasing(x, p, area, r1, fill, gen(3))
    fill_t = torch.tensor(fill).view(1, 3, 1, 1)
    erased = out != x
    assert torch.equal(erased[:, 0], erased[:, 1]) and torch.equal(erased[:, 0], erased[:, 2])  # all channels
    assert torch.equal(out[erased], fill_t.expand_as(out)[erased])  # with the configured fill
    ours = boxes_of(erased[:, 0])
    rnd = random.Random(0)
    ref = [reference_erasing_box(h, w, p, area, r1, rnd) for _ in range(N)]

    def summary(boxes):
        got = [b for b in boxes if b]
        frac = len(got) / len(boxes)
        areas = np.array([b[2] * b[3] / (h * w) for b in got])
        tall = np.mean([b[2] > b[3] for b in got])
        centre_row = np.mean([b[0] + b[2] / 2 for b in got]) / h
        return frac, areas.mean(), areas.min(), areas.max(), tall, centre_row

    s_ours, s_ref = summary(ours), summary(ref)
    assert abs(s_ours[0] - s_ref[0]) < TOL, (s_ours, s_ref)  # fraction of images erased (~ p)
    assert abs(s_ours[0] - p) < TOL
    assert abs(s_ours[1] - s_ref[1]) < 0.02, (s_ours, s_ref)  # mean erased area fraction
    # area in [0.02, 0.4] of H x W up to the rounding of the box sides, as in the reference
    assert s_ours[2] >= s_ref[2] - 0.005 and s_ours[3] <= s_ref[3] + 0.02, (s_ours, s_ref)
    assert abs(s_ours[4] - s_ref[4]) < 0.06 and abs(s_ours[5] - s_ref[5]) < 0.03, (s_ours, s_ref)


def test_random_erasing_fraction_at_half():
    out = random_erasing(floats(N) + 10, 0.5, (0.02, 0.4), 0.3, (0.0, 0.0, 0.0), gen(7))
    frac = float(changed(out, floats(N) + 10).float().mean())
    assert abs(frac - 0.5) < TOL


def test_random_erasing_never_erases_when_nothing_fits():
    # area >= 0.9 of a 4 x 4 image never fits with h < 4 and w < 4: the reference gives up after 100 tries
    x = floats(200, 4, 4)
    assert torch.equal(random_erasing(x, 1.0, (0.9, 1.0), 0.9, (0.0, 0.0, 0.0), gen()), x)


# -- channel augmentations -------------------------------------------------------------------------
def test_channel_exchange_copies_exactly_one_channel_uniformly():
    x = floats(N)
    out = channel_exchange(x, 1.0, gen(4))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    source = torch.stack([(out[:, 0] == x[:, c]).flatten(1).all(1) for c in range(3)], 1)
    assert torch.equal(source.sum(1), torch.ones(N, dtype=torch.long))  # one channel, never a grey mix
    freq = source.float().mean(0)
    assert torch.all((freq - 1 / 3).abs() < TOL), freq


def test_channel_exchange_probability():
    x = floats(N)
    assert abs(float(changed(channel_exchange(x, 0.5, gen(5)), x).float().mean()) - 0.5) < TOL


def test_adaptive_gray_splits_half_green_quarter_grey_quarter_unchanged():
    x = floats(N)
    out = adaptive_gray(x, 0.5, gen(6))
    green = (out == x[:, 1:2]).flatten(1).all(1)
    r, g, b = GRAY_WEIGHTS
    grey_img = (r * x[:, 0] + g * x[:, 1] + b * x[:, 2])[:, None].expand_as(x)
    grey = torch.isclose(out, grey_img).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert torch.equal(green.int() + grey.int() + same.int(), torch.ones(N, dtype=torch.int))
    fractions = [float(m.float().mean()) for m in (green, grey, same)]
    assert all(abs(f - e) < TOL for f, e in zip(fractions, (0.5, 0.25, 0.25))), fractions
    assert torch.equal(adaptive_gray(x, 1.0, gen()), x[:, 1:2].expand_as(x))


def test_channel_scale_multiplies_each_channel_by_its_own_factor():
    x = floats(N).abs() + 0.5
    out = channel_scale(x, 0.5, (0.01, 0.5), gen(8))
    ratio = out / x
    per_channel = ratio.flatten(2)
    assert torch.allclose(per_channel, per_channel[..., :1].expand_as(per_channel))  # one factor per channel
    factors = per_channel[..., 0]
    scaled = (factors != 1).any(1)
    assert abs(float(scaled.float().mean()) - 0.5) < TOL
    f = factors[scaled]
    assert f.min() >= 0.02 - 1e-6 and f.max() <= 1.0 + 1e-6  # 2 * U(0.01, 0.5)
    assert abs(float(f.mean()) - 0.51) < 0.02
    assert float((f[:, 0] != f[:, 1]).float().mean()) > 0.99  # independent per channel


# -- pixel-space augmentations ---------------------------------------------------------------------
def test_random_grayscale_is_pils_luma_with_probability_p():
    x = u8(N)
    out = random_grayscale(x, 0.5, gen(9))
    grey = changed(out, x)
    assert abs(float(grey.float().mean()) - 0.5) < TOL
    for i in torch.nonzero(grey).flatten()[:5].tolist():
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), np.asarray(img.convert("L").convert("RGB")))


def test_adjust_brightness_matches_pil():
    x = u8(1, 20, 12)
    img = Image.fromarray(x[0].permute(1, 2, 0).numpy())
    for f in (0.0, 0.37, 0.5, 1.0, 1.21, 1.5):
        f32 = float(np.float32(f))
        ours = adjust_brightness(x, torch.tensor([f32]))[0].permute(1, 2, 0).numpy()
        assert np.array_equal(ours, np.asarray(ImageEnhance.Brightness(img).enhance(f32))), f


def test_random_brightness_factor_range():
    x = torch.full((N, 3, 2, 2), 100, dtype=torch.uint8)
    factor = random_brightness(x, 0.5, gen(10))[:, 0, 0, 0].float() / 100
    assert factor.min() >= 0.5 and factor.max() <= 1.5
    assert factor.min() < 0.55 and factor.max() > 1.45 and abs(float(factor.mean()) - 1.0) < 0.03


def test_pad_crop_flip_is_a_zero_padded_crop_with_uniform_offsets_and_flips():
    b, h, w, pad = 2000, 12, 6, 3
    rows = torch.arange(1, h + 1, dtype=torch.uint8).view(1, h, 1).expand(b, h, w)
    cols = torch.arange(1, w + 1, dtype=torch.uint8).view(1, 1, w).expand(b, h, w)
    x = torch.stack([rows, cols, torch.full_like(rows, 200)], 1).contiguous()
    out = pad_crop_flip(x, pad, 0.5, gen(11)).numpy()
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)).numpy()
    offsets = np.full((b, 2), -1)
    flips = np.zeros(b, bool)
    for oy in range(2 * pad + 1):  # every sample must equal exactly one crop of its padded self, or its mirror
        for ox in range(2 * pad + 1):
            crop = padded[:, :, oy : oy + h, ox : ox + w]
            for flip, candidate in ((False, crop), (True, crop[..., ::-1])):
                hit = (out == candidate).all(axis=(1, 2, 3))
                assert (offsets[hit] == -1).all()
                offsets[hit], flips[hit] = (oy, ox), flip
    assert (offsets >= 0).all(), "some samples are not a zero-padded crop (or its mirror)"
    assert abs(flips.mean() - 0.5) < TOL
    for axis in (0, 1):
        counts = np.bincount(offsets[:, axis], minlength=2 * pad + 1)
        assert len(counts) == 2 * pad + 1 and counts.min() > 0.6 * b / (2 * pad + 1)  # uniform over 0..2*pad


# -- the four pipelines ----------------------------------------------------------------------------
def test_stream_specific_steps():
    vis, ir = u8(32, seed=1), u8(32, seed=2)
    cfg = AugmentConfig(
        flip_p=0,
        pad=0,
        grayscale_p=1,
        erasing_p=0,
        channel_exchange_p=1,
        adaptive_gray_p=1,
        channel_scale_p=1,
        brightness=0,
    )
    v1, v2, i1, i2 = QuadAugment(cfg)(vis, ir, gen())
    # V1: grey in pixel space (before normalisation): equal channels after undoing it
    pix = denormalize(v1)
    assert torch.allclose(pix[:, 0], pix[:, 1], atol=1e-3) and torch.allclose(pix[:, 1], pix[:, 2], atol=1e-3)
    # V2: one *normalised* channel copied to all three (the exchange acts on the normalised tensor)
    assert torch.equal(v2[:, 0], v2[:, 1]) and torch.equal(v2[:, 1], v2[:, 2])
    # I1: adaptive gray at p = 1 copies G
    assert torch.equal(i1, normalize_uint8(ir)[:, 1:2].expand_as(i1))
    # I2: per-channel intensity scaling of the normalised image
    ratio = (i2 / normalize_uint8(ir)).flatten(2)
    assert torch.allclose(ratio, ratio.median(2, keepdim=True).values, atol=1e-4)
    # the visible streams never touch the infrared batch and vice versa
    assert not torch.equal(v1, QuadAugment(cfg)(ir, ir, gen())[0])


def test_erasing_and_geometry_apply_to_every_stream():
    vis, ir = u8(400, seed=1), u8(400, seed=2)
    cfg = AugmentConfig(
        flip_p=0,
        pad=0,
        grayscale_p=0,
        erasing_p=1,
        channel_exchange_p=0,
        adaptive_gray_p=0,
        channel_scale_p=0,
        brightness=0,
    )
    plain = [normalize_uint8(vis)] * 2 + [normalize_uint8(ir)] * 2
    for view, ref in zip(QuadAugment(cfg)(vis, ir, gen()), plain):
        assert float(changed(view, ref).float().mean()) > 0.97
    cfg = AugmentConfig(
        flip_p=1,
        pad=0,
        grayscale_p=0,
        erasing_p=0,
        channel_exchange_p=0,
        adaptive_gray_p=0,
        channel_scale_p=0,
        brightness=0,
    )
    for view, ref in zip(QuadAugment(cfg)(vis, ir, gen()), plain):
        assert torch.equal(view, ref.flip(3))


def test_brightness_only_on_the_second_infrared_stream():
    vis, ir = u8(200, seed=1), u8(200, seed=2)
    cfg = AugmentConfig(
        flip_p=0,
        pad=0,
        grayscale_p=0,
        erasing_p=0,
        channel_exchange_p=0,
        adaptive_gray_p=0,
        channel_scale_p=0,
        brightness=0.5,
    )
    v1, v2, i1, i2 = QuadAugment(cfg)(vis, ir, gen())
    assert torch.equal(v1, normalize_uint8(vis)) and torch.equal(v2, v1) and torch.equal(i1, normalize_uint8(ir))
    assert float(changed(i2, i1).float().mean()) > 0.95


def test_default_config_output_contract_and_layouts():
    vis, ir = u8(12, 32, 16, seed=1), u8(12, 32, 16, seed=2)
    aug = QuadAugment(AugmentConfig())
    views = aug(vis, ir, gen(1))
    assert [tuple(v.shape) for v in views] == [(12, 3, 32, 16)] * 4
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in views)
    # the cache's B x H x W x 3 layout gives the same views as B x 3 x H x W
    nhwc = aug(vis.permute(0, 2, 3, 1).contiguous(), ir.permute(0, 2, 3, 1).contiguous(), gen(1))
    assert all(torch.equal(a, b) for a, b in zip(views, nhwc))
    two = QuadAugment(AugmentConfig(), streams=2)(vis, ir, gen(1))
    assert len(two) == 2 and torch.equal(two[0], views[0])


def test_reproducible_from_the_generator_and_random_per_sample():
    vis = u8(1, 32, 16, seed=1).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    ir = u8(1, 32, 16, seed=2).expand(16, -1, -1, -1).contiguous()
    aug = QuadAugment(AugmentConfig())
    a, b, c = aug(vis, ir, gen(42)), aug(vis, ir, gen(42)), aug(vis, ir, gen(43))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    for view in a:  # identical inputs, different randomness per sample
        distinct = {view[i].numpy().tobytes() for i in range(16)}
        assert len(distinct) > 12


@pytest.mark.parametrize(
    "bad, message",
    [
        ((torch.zeros(2, 3, 8, 4), torch.zeros(2, 3, 8, 4)), "uint8"),
        ((torch.zeros(2, 3, 8, 4, dtype=torch.uint8), torch.zeros(3, 3, 8, 4, dtype=torch.uint8)), "differ in shape"),
        ((torch.zeros(2, 4, 8, 4, dtype=torch.uint8),) * 2, "3 colour channels"),
    ],
)
def test_bad_inputs(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        QuadAugment(AugmentConfig())(*bad, gen())


def test_bad_stream_count():
    with pytest.raises(ValueError, match="streams must be 2 or 4"):
        QuadAugment(AugmentConfig(), streams=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu_with_a_gpu_generator():
    dev = torch.device("cuda")
    vis, ir = u8(8, 32, 16, seed=1).to(dev), u8(8, 32, 16, seed=2).to(dev)
    g1, g2 = torch.Generator(device=dev).manual_seed(0), torch.Generator(device=dev).manual_seed(0)
    a, b = QuadAugment(AugmentConfig())(vis, ir, g1), QuadAugment(AugmentConfig())(vis, ir, g2)
    assert all(v.device.type == "cuda" and torch.equal(v, w) for v, w in zip(a, b))
