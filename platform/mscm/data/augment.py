"""The quadruple-stream training augmentations (docs/model.md, "The four streams' augmentations"), as batched tensor
operations on the training device. Every sample draws its own randomness from one ``torch.Generator``,
so a (seed, epoch, rank)-seeded generator makes an epoch's views reproducible.

Pipelines (probabilities and strengths from :class:`~mscm.config.schema.AugmentConfig`):

====  =====================================================================================
V1    random grayscale(p) -> pad + random crop -> h-flip -> normalise -> random erasing
V2    pad + random crop -> h-flip -> normalise -> random erasing -> channel exchange
I1    pad + random crop -> h-flip -> normalise -> random erasing -> adaptive gray
I2    brightness jitter -> pad + random crop -> h-flip -> normalise -> erasing -> channel scaling
====  =====================================================================================

Pixel-space steps (grayscale, brightness, pad/crop/flip) work on uint8 images as the reference's PIL
transforms do; the channel augmentations and erasing act on the ImageNet-normalised tensor, with the
erasing fill (the CIFAR mean) written in normalised space, as in the released ``channel_aug.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config.schema import AugmentConfig
from .imagenet import normalize_uint8

ERASING_ATTEMPTS = 100  # the reference's retry limit
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ChannelAdapGray / ChannelExchange weighted gray


def _rand(g: torch.Generator, *shape: int, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=g.device).to(like.device)


def _randint(g: torch.Generator, high: int, n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=g, device=g.device).to(like.device)


def as_bchw_uint8(images: torch.Tensor) -> torch.Tensor:
    """B x H x W x 3 (cache layout) or B x 3 x H x W uint8 -> B x 3 x H x W."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"expected a uint8 batch B x H x W x 3 or B x 3 x H x W, got {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[1] == 3 and images.shape[-1] != 3:
        return images
    if images.shape[-1] == 3:
        return images.permute(0, 3, 1, 2)
    raise ValueError(f"expected 3 colour channels, got shape {tuple(images.shape)}")


# -- pixel space (uint8, B x 3 x H x W) -----------------------------------------------------------
def random_grayscale(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """torchvision RandomGrayscale on PIL images: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (PIL's
    integer ITU-R 601 luma), copied to all three channels."""
    apply = _rand(g, x.shape[0], like=x) < p
    if p <= 0:
        return x
    c = x.to(torch.int32)
    gray = ((c[:, 0] * 19595 + c[:, 1] * 38470 + c[:, 2] * 7471 + 32768) >> 16).to(torch.uint8)
    return torch.where(apply[:, None, None, None], gray[:, None].expand_as(x), x)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageEnhance.Brightness(img).enhance(f)`` per sample (what torchvision's ColorJitter does to a
    PIL image): a blend with black, ``float32(pixel * f)`` truncated towards zero and clipped to 0..255."""
    scaled = x.float() * factor.to(torch.float32)[:, None, None, None]
    return scaled.clamp_(0, 255).floor_().to(torch.uint8)


def random_brightness(x: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """ColorJitter(brightness=b): per sample a factor ~ U[max(0, 1-b), 1+b] (:func:`adjust_brightness`)."""
    factor = _rand(g, x.shape[0], like=x)
    if strength <= 0:
        return x
    lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
    return adjust_brightness(x, lo + (hi - lo) * factor)


def pad_crop_flip(x: torch.Tensor, pad: int, flip_p: float, g: torch.Generator) -> torch.Tensor:
    """Pad(pad, zeros) -> RandomCrop(H, W) -> RandomHorizontalFlip(flip_p), as one gather: each sample's
    crop offset is uniform in 0..2*pad on both axes (inclusive), then its columns are reversed if flipped."""
    b, c, h, w = x.shape
    oy = _randint(g, 2 * pad + 1, b, x)
    ox = _randint(g, 2 * pad + 1, b, x)
    flip = _rand(g, b, like=x) < flip_p
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad))
    hp, wp = h + 2 * pad, w + 2 * pad
    rows = oy[:, None] + torch.arange(h, device=x.device)
    cols = ox[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, hp * wp).gather(2, index).view(b, c, h, w)


# -- normalised space (float, B x 3 x H x W) ----------------------------------------------------
def random_erasing(
    x: torch.Tensor,
    p: float,
    area: tuple[float, float],
    aspect: float,
    fill: tuple[float, float, float],
    g: torch.Generator,
) -> torch.Tensor:
    """ChannelRandomErasing. With probability p, erase a rectangle of area U(area)*H*W and aspect ratio
    U(aspect, 1/aspect) (h = round(sqrt(A*r)), w = round(sqrt(A/r))), at a uniform position, with
    ``fill`` per channel. The reference retries up to 100 times until the rectangle fits (h < H and
    w < W) and erases nothing if none does; here all 100 attempts are drawn at once and the first
    that fits is used, which is the same distribution."""
    b, _, h, w = x.shape
    apply = _rand(g, b, like=x) < p
    target = (area[0] + (area[1] - area[0]) * _rand(g, b, ERASING_ATTEMPTS, like=x)) * (h * w)
    ratio = aspect + (1.0 / aspect - aspect) * _rand(g, b, ERASING_ATTEMPTS, like=x)
    eh = torch.sqrt(target * ratio).round().long()
    ew = torch.sqrt(target / ratio).round().long()
    fits = (eh < h) & (ew < w)
    first = fits.long().argmax(dim=1, keepdim=True)
    eh, ew = eh.gather(1, first)[:, 0], ew.gather(1, first)[:, 0]
    top = (_rand(g, b, like=x) * (h - eh + 1)).floor().long()
    left = (_rand(g, b, like=x) * (w - ew + 1)).floor().long()
    apply &= fits.any(dim=1)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    value = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.where(mask[:, None], value, x)


def _weighted_gray(x: torch.Tensor) -> torch.Tensor:
    r, gr, b = GRAY_WEIGHTS
    return (r * x[:, 0] + gr * x[:, 1] + b * x[:, 2])[:, None].expand_as(x)


def channel_exchange(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """ChannelExchange(gray=2): copy one uniformly chosen channel (R, G or B) into all three. The
    reference always does it (p = 1); with p < 1 the rest of the samples are left unchanged."""
    b, _, h, w = x.shape
    apply = _rand(g, b, like=x) < p
    idx = _randint(g, 3, b, x)
    chosen = x.gather(1, idx.view(b, 1, 1, 1).expand(b, 1, h, w)).expand_as(x)
    return torch.where(apply[:, None, None, None], chosen, x)


def adaptive_gray(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """ChannelAdapGray as the released code behaves at p = 0.5 (section 2: 50 % copy G into R and B,
    else 50 % weighted gray, else unchanged), generalised as: with probability p copy G; otherwise, with
    probability p, weighted gray 0.2989 R + 0.5870 G + 0.1140 B; otherwise unchanged. So p = 0 is the
    identity and p = 0.5 gives the reference's 50/25/25 split."""
    b = x.shape[0]
    u_copy, u_gray = _rand(g, b, like=x), _rand(g, b, like=x)
    g_copy = u_copy < p
    gray = ~g_copy & (u_gray < p)
    out = torch.where(gray[:, None, None, None], _weighted_gray(x), x)
    return torch.where(g_copy[:, None, None, None], x[:, 1:2].expand_as(x), out)


def channel_scale(x: torch.Tensor, p: float, scale_range: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    """ChannelT: with probability p multiply each channel by its own factor 2 * U(lo, hi)."""
    b = x.shape[0]
    apply = _rand(g, b, like=x) < p
    lo, hi = scale_range
    factor = 2.0 * (lo + (hi - lo) * _rand(g, b, 3, like=x))
    return torch.where(apply[:, None, None, None], x * factor[:, :, None, None], x)


class QuadAugment:
    """``QuadAugment(cfg, streams)(visible_u8, infrared_u8, generator) -> [V1, V2, I1, I2]`` (or
    ``[V1, I1]`` with ``streams=2``): float32 B x 3 x H x W normalised views on the inputs' device.

    Inputs are uint8 batches, B x H x W x 3 (as the image cache stores them) or B x 3 x H x W. The
    generator may live on the CPU or on the inputs' device; the draws happen in a fixed order
    (V1, V2, I1, I2), so the same generator state gives the same views.
    """

    def __init__(self, cfg: AugmentConfig, streams: int = 4):
        if streams not in (2, 4):
            raise ValueError(f"streams must be 2 or 4, got {streams}")
        self.cfg, self.streams = cfg, streams

    def _geometry_and_erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.cfg
        x = normalize_uint8(pad_crop_flip(x, c.pad, c.flip_p, g))
        return random_erasing(x, c.erasing_p, c.erasing_area, c.erasing_aspect, c.erasing_fill, g)

    def visible1(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self._geometry_and_erase(random_grayscale(as_bchw_uint8(x), self.cfg.grayscale_p, g), g)

    def visible2(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return channel_exchange(self._geometry_and_erase(as_bchw_uint8(x), g), self.cfg.channel_exchange_p, g)

    def infrared1(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return adaptive_gray(self._geometry_and_erase(as_bchw_uint8(x), g), self.cfg.adaptive_gray_p, g)

    def infrared2(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = random_brightness(as_bchw_uint8(x), self.cfg.brightness, g)
        return channel_scale(self._geometry_and_erase(x, g), self.cfg.channel_scale_p, self.cfg.channel_scale_range, g)

    def __call__(
        self, visible_u8: torch.Tensor, infrared_u8: torch.Tensor, generator: torch.Generator
    ) -> list[torch.Tensor]:
        if visible_u8.shape != infrared_u8.shape:
            raise ValueError(
                f"visible and infrared batches differ in shape: {tuple(visible_u8.shape)} vs {tuple(infrared_u8.shape)}"
            )
        if self.streams == 2:
            return [self.visible1(visible_u8, generator), self.infrared1(infrared_u8, generator)]
        return [
            self.visible1(visible_u8, generator),
            self.visible2(visible_u8, generator),
            self.infrared1(infrared_u8, generator),
            self.infrared2(infrared_u8, generator),
        ]
