"""Render one synthetic person image (visible RGB, near-infrared or thermal) with numpy.

Geometry is computed on the pixel grid in body coordinates (u across, v down; the body height is 1),
so every body part is a vectorised mask. Per image the pose (view, stride, arm swing), scale, shift,
background clutter, illumination, occlusion, blur and noise vary; per camera the background style,
light level, colour cast, distance and sensor noise vary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .appearance import BAG, HAIR, HAT, LOWER, LOWER2, LUMA, N_MATERIALS, SHOES, SKIN, UPPER, UPPER2, Identity
from .style import Style

KINDS = ("rgb", "nir", "thermal")


@dataclass(frozen=True)
class Camera:
    cam: int
    kind: str  # rgb | nir | thermal
    wall: np.ndarray  # background colour above the floor line (RGB 0..1)
    floor: np.ndarray  # below it
    floor_v: float  # floor line, fraction of the image height
    gain: tuple[float, float]
    cast: np.ndarray  # per-channel colour multiplier (rgb only)
    noise: float  # Gaussian noise std, 0..1 units
    blur: float  # PIL GaussianBlur radius, in pixels at 128 px image height
    scale: tuple[float, float]  # body height / image height
    clutter: float  # mean number of background objects

    @property
    def infrared(self) -> bool:
        return self.kind != "rgb"


def sample_camera(cam: int, kind: str, rng: np.random.Generator, *, low_light: bool = False) -> Camera:
    if kind not in KINDS:
        raise ValueError(f"camera kind must be one of {KINDS}, got {kind!r}")
    # muted scene colours: half grey, half a random colour
    wall = 0.5 * rng.uniform(0.2, 0.8) + 0.5 * rng.uniform(0.1, 0.9, 3)
    floor = 0.5 * rng.uniform(0.1, 0.6) + 0.5 * rng.uniform(0.05, 0.7, 3)
    if kind != "rgb":
        wall, floor = np.full(3, wall @ LUMA), np.full(3, floor @ LUMA)
    gain = (0.3, 0.6) if low_light else (0.65, 1.25)
    return Camera(
        cam=cam,
        kind=kind,
        wall=wall,
        floor=floor,
        floor_v=float(rng.uniform(0.65, 0.9)),
        gain=gain,
        cast=rng.uniform(0.85, 1.15, 3) if kind == "rgb" else np.ones(3),
        noise=float(rng.uniform(0.01, 0.03) * (2.0 if low_light or kind != "rgb" else 1.0)),
        blur=float(rng.uniform(0.0, 0.6) + (0.5 if kind != "rgb" else 0.0)),
        scale=tuple(sorted(rng.uniform(0.72, 0.97, 2))),
        clutter=float(rng.uniform(1.0, 5.0)),
    )


def _segment_dist(u: np.ndarray, v: np.ndarray, a: tuple[float, float], b: tuple[float, float]):
    """Distance from each (u, v) to the segment a-b, and the position along it (0 at a, 1 at b)."""
    du, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((u - a[0]) * du + (v - a[1]) * dv) / (du * du + dv * dv + 1e-12), 0.0, 1.0)
    return np.hypot(u - a[0] - t * du, v - a[1] - t * dv), t


def _pattern(kind: str, pu: np.ndarray, pv: np.ndarray, period: float, phase: float, front: bool) -> np.ndarray:
    if kind == "hstripes":
        return np.floor(pv / period + phase).astype(np.int64) % 2 == 1
    if kind == "vstripes":
        return np.floor(pu / period + phase).astype(np.int64) % 2 == 1
    if kind == "checks":
        return (np.floor(pu / period + phase).astype(np.int64) + np.floor(pv / period).astype(np.int64)) % 2 == 1
    if kind == "diagonal":
        return np.floor((pu + pv) / period + phase).astype(np.int64) % 2 == 1
    if kind == "block" and front:  # a chest print, seen from the front only
        return (np.abs(pu) < 0.055) & (pv > 0.05) & (pv < 0.15)
    return np.zeros(pu.shape, bool)


@dataclass(frozen=True)
class _Pose:
    """One image's pose of a person: the view, which side faces the camera, and the limbs' swing."""

    view: str
    side: int
    wf: float  # width factor: a side view is narrower
    stride: float
    swing: float
    neck_v: float
    head_c: float


def _person(
    ident: Identity, u: np.ndarray, v: np.ndarray, rng: np.random.Generator, variation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Material map (0 = background) and the horizontal body coordinate used for shading."""
    view = rng.choice(["front", "back", "side"], p=[0.4, 0.35, 0.25])
    side = int(rng.choice([-1, 1]))
    wf = 0.62 if view == "side" else 1.0  # side view: narrower body
    stride = rng.uniform(0.0, 0.09) * variation
    swing = rng.uniform(-0.06, 0.06) * variation
    pose = _Pose(view, side, wf, stride, swing, 2 * ident.head_r + 0.015, ident.head_r + 0.005)
    m = np.zeros(u.shape, np.int8)
    _legs(m, ident, u, v, pose)
    _arms(m, ident, u, v, pose)
    _torso_and_head(m, ident, u, v, pose)
    _bag(m, ident, u, v, pose)
    # patterns: the second colour of the upper and lower garment
    pu, front = u / wf, view == "front"
    upper = _pattern(ident.upper_pattern, pu, v - pose.neck_v, ident.upper_period, ident.upper_phase, front)
    m[(m == UPPER) & upper] = UPPER2
    m[(m == LOWER) & _pattern(ident.lower_pattern, pu, v - ident.waist_v, ident.lower_period, 0.0, front)] = LOWER2
    return m, np.abs(u) / (ident.shoulder * wf + 0.02)


def _legs(m: np.ndarray, ident: Identity, u: np.ndarray, v: np.ndarray, pose: _Pose) -> None:
    """Legs (each tapering), lower garment and shoes."""
    wv, stride, wf, side = ident.waist_v, pose.stride, pose.wf, pose.side
    t = np.clip((v - wv) / (1 - wv), 0, 1)
    if pose.view == "side":
        centres = (stride * 1.3 * t, -stride * 1.3 * t)
    else:
        centres = (-ident.waist * 0.5 - stride * t, ident.waist * 0.5 + stride * t)
    legs_lower = ident.lower_kind == "trousers"
    for c in centres:
        leg = (v >= wv) & (v <= 0.96) & (np.abs(u - c) < ident.leg_w * (1 - 0.3 * t))
        below_hem = v > ident.hem_v
        m[leg] = np.where(below_hem[leg] & (not legs_lower), SKIN, LOWER)
        shoe_c = c + (side * 0.02 if pose.view == "side" else 0.0)
        m[(v > 0.94) & (v <= 1.0) & (np.abs(u - shoe_c) < ident.leg_w * 1.15)] = SHOES
    m[(v >= wv) & (v < wv + 0.07) & (np.abs(u) < ident.waist * wf * 1.05)] = LOWER
    if ident.lower_kind == "skirt":
        m[(v >= wv) & (v < ident.hem_v) & (np.abs(u) < (ident.waist + (v - wv) * 0.4) * wf)] = LOWER


def _arms(m: np.ndarray, ident: Identity, u: np.ndarray, v: np.ndarray, pose: _Pose) -> None:
    """Shoulder -> hand segments, the sleeve part in the upper garment."""
    sh_u, swing, neck_v = ident.shoulder * pose.wf * 0.85, pose.swing, pose.neck_v
    arms = [(pose.side * 0.0 + 0.0, swing * 1.5)] if pose.view == "side" else [(-sh_u, -swing), (sh_u, swing)]
    for au, sw in arms:
        out = np.sign(au) * 0.015 if au else 0.0
        d, ta = _segment_dist(u, v, (au, neck_v + 0.025), (au + out + sw, ident.waist_v + 0.09))
        arm = d < ident.arm_w
        m[arm] = np.where(ta[arm] <= ident.sleeve, UPPER, SKIN)


def _torso_and_head(m: np.ndarray, ident: Identity, u: np.ndarray, v: np.ndarray, pose: _Pose) -> None:
    """Torso (trapezoid with rounded shoulders), neck, head, hair, hat."""
    hr, wv, neck_v, head_c, view = ident.head_r, ident.waist_v, pose.neck_v, pose.head_c, pose.view
    frac = np.clip((v - neck_v) / (wv - neck_v), 0, 1)
    half = (ident.shoulder + (ident.waist - ident.shoulder) * frac) * pose.wf
    half = half * np.sqrt(np.clip((v - neck_v + 0.005) / 0.035, 0, 1))
    torso = (v >= neck_v - 0.005) & (v <= wv + 0.01) & (np.abs(u) < half)
    if view == "side":  # the near arm stays in front of the torso
        torso &= m == 0
    m[torso] = UPPER
    m[(v > 2 * hr - 0.01) & (v < neck_v + 0.01) & (np.abs(u) < hr * 0.45)] = SKIN
    head = ((u - pose.side * 0.01 * (view == "side")) / (hr * 0.8)) ** 2 + ((v - head_c) / hr) ** 2 < 1
    m[head] = HAIR if view == "back" else SKIN
    m[head & (v < head_c - hr * (0.35 if view != "side" else 0.2))] = HAIR
    if ident.long_hair:
        drape = (v > head_c) & (v < neck_v + 0.09) & (np.abs(u) < hr * 0.95)
        if view != "back":
            drape &= np.abs(u) > hr * 0.6
        m[drape] = HAIR
    if ident.hat:
        m[(v < head_c - hr * 0.3) & (v > head_c - hr * 1.15) & (np.abs(u) < hr * 1.1)] = HAT


def _bag(m: np.ndarray, ident: Identity, u: np.ndarray, v: np.ndarray, pose: _Pose) -> None:
    neck_v, wv, wf, side, view = pose.neck_v, ident.waist_v, pose.wf, pose.side, pose.view
    top = neck_v + 0.03
    if ident.bag == "backpack":
        size = ident.bag_size
        if view == "back":
            m[(v > top) & (v < top + 0.2 * size) & (np.abs(u) < ident.shoulder * 0.75 * size)] = BAG
        elif view == "front":
            for su in (-ident.shoulder * 0.55, ident.shoulder * 0.55):
                m[(v > neck_v) & (v < top + 0.16) & (np.abs(u - su) < 0.012)] = BAG
        else:
            edge = ident.shoulder * wf
            m[(v > top) & (v < top + 0.2 * size) & (-side * u > edge * 0.7) & (-side * u < edge + 0.07 * size)] = BAG
    elif ident.bag == "shoulder":
        bs = ident.bag_side if view != "back" else -ident.bag_side
        bu = bs * (ident.waist * wf + 0.035)
        if view != "side":
            d, _ = _segment_dist(u, v, (-bs * ident.shoulder * 0.6, neck_v + 0.01), (bu, wv - 0.03))
            m[d < 0.009] = BAG
        m[(v > wv - 0.04) & (v < wv + 0.1 * ident.bag_size) & (np.abs(u - bu) < 0.045 * ident.bag_size)] = BAG


def _background(cam: Camera, h: int, w: int, rng: np.random.Generator, clutter: float = 1.0) -> np.ndarray:
    y = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
    floor_v = cam.floor_v + rng.uniform(-0.04, 0.04)
    img = np.where((y < floor_v)[..., None], cam.wall, cam.floor) * np.ones((h, w, 1), np.float32)
    img = img * (1 + 0.15 * (y[..., None] - 0.5))  # vertical light fall-off
    for _ in range(rng.poisson(cam.clutter * clutter)):  # boxes, pillars, doors, other people's blur
        y0, x0 = rng.integers(0, h), rng.integers(-w // 4, w)
        hh, ww = rng.integers(h // 10, h // 2), rng.integers(w // 10, w // 2)
        colour = rng.uniform(0.05, 0.95, 3)
        if cam.infrared:
            colour = np.full(3, colour @ LUMA)
        img[max(y0, 0) : y0 + hh, max(x0, 0) : x0 + ww] = colour
    return img


def render(
    ident: Identity, cam: Camera, rng: np.random.Generator, height: int, width: int, style: Style = Style()
) -> np.ndarray:
    """One image of ``ident`` seen by ``cam``: uint8 height x width x 3 (grey in all channels if IR)."""
    h, w, var = height, width, style.variation
    lo, hi = cam.scale
    mid = 0.5 * (lo + hi)  # variation shrinks the scale range and the framing jitter towards their middle
    scale = mid + var * (rng.uniform(lo, hi) - mid)
    bh = scale * h
    free = 1.0 - scale + 0.05  # vertical room; the body is centred in it at variation 0
    top = (-0.03 + free * (0.5 + var * (rng.uniform(0, 1) - 0.5))) * h
    cx = (0.5 + var * rng.uniform(-0.12, 0.12)) * w
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    u, v = (x - cx) / bh, (y - top) / bh
    m, radial = _person(ident, u, v, rng, var)

    img = _background(cam, h, w, rng, style.clutter)
    person = m > 0
    if cam.kind == "rgb":
        table = ident.rgb
    else:
        table = np.repeat(ident.ir[:, None], 3, axis=1)
        if cam.kind == "thermal":  # the body is warm: compressed, bright response on a cooler scene
            table = 0.5 + 0.45 * table
            img = img * 0.5
    shade = 1.0 - 0.35 * np.clip(radial, 0, 1) ** 2  # round body: darker towards the silhouette's edges
    img[person] = table[m[person]] * shade[person][:, None]

    if rng.random() < 0.08:  # something in front of the person (a rail, a passer-by)
        y0 = int(h * rng.uniform(0.55, 0.85))
        x0, x1 = sorted(rng.integers(0, w, 2))
        colour = rng.uniform(0.05, 0.95, 3)
        img[y0:, x0 : x1 + w // 6] = colour if cam.kind == "rgb" else colour @ LUMA

    # illumination: camera light level, a side-to-side gradient, colour cast; NIR illuminator vignette
    gain = rng.uniform(*cam.gain)
    grad = 1 + rng.uniform(-0.25, 0.25) * ((x - 0.5) / w * 2 - 1)
    img = img * (gain * grad)[..., None] * cam.cast * rng.uniform(0.95, 1.05, 3 if cam.kind == "rgb" else 1)
    if cam.kind == "nir":
        r2 = ((x / w - 0.5) ** 2 + (y / h - 0.5) ** 2)[..., None]
        img = img * (1.15 - 0.8 * r2)
    out = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
    radius = cam.blur * h / 128 * rng.uniform(0.6, 1.4)
    if radius > 0.2:
        out = out.filter(ImageFilter.GaussianBlur(radius))
    arr = np.asarray(out, dtype=np.float32) / 255 + rng.normal(0, cam.noise, (h, w, 1 if cam.infrared else 3))
    arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    if cam.infrared:
        arr = np.repeat(arr[..., :1], 3, axis=2)
    return arr


assert N_MATERIALS > max(SKIN, HAIR, UPPER, UPPER2, LOWER, LOWER2, SHOES, BAG, HAT)
