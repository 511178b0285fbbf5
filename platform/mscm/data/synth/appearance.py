"""What a synthetic identity looks like: body proportions, clothing (colours, patterns, sleeve and leg
lengths), hair, hat, bag, and each material's infrared intensity.

Lengths are in units of the body height (feet to top of head = 1). The infrared intensity of a
material is mostly a per-identity random "material response" and only partly its visible luminance,
so a model cannot match modalities by grey level alone; shape, pattern geometry, sleeve/leg length,
hair, hat and bag are what carries over (as with real NIR/thermal cameras).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Materials (rows of the colour tables); 0 is the background, which the renderer paints itself.
SKIN, HAIR, UPPER, UPPER2, LOWER, LOWER2, SHOES, BAG, HAT = range(1, 10)
N_MATERIALS = 10

PATTERNS = ("solid", "hstripes", "vstripes", "checks", "diagonal", "block")
LOWER_PATTERNS = ("solid", "solid", "solid", "hstripes", "vstripes", "checks")
LOWER_KINDS = ("trousers", "trousers", "shorts", "skirt")
BAGS = ("none", "none", "backpack", "shoulder")

_PALETTE = np.array(
    [  # clothing colours (RGB 0..1): saturated and dull ones, darks and lights
        [0.85, 0.1, 0.1],
        [0.1, 0.25, 0.75],
        [0.1, 0.55, 0.2],
        [0.95, 0.8, 0.1],
        [0.95, 0.95, 0.92],
        [0.08, 0.08, 0.1],
        [0.5, 0.5, 0.52],
        [0.55, 0.3, 0.12],
        [0.9, 0.45, 0.1],
        [0.5, 0.15, 0.55],
        [0.1, 0.6, 0.65],
        [0.95, 0.55, 0.7],
        [0.2, 0.2, 0.35],
        [0.7, 0.65, 0.5],
        [0.35, 0.45, 0.2],
        [0.6, 0.05, 0.2],
    ]
)
_SKIN = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.72, 0.52, 0.38], [0.52, 0.36, 0.26], [0.36, 0.24, 0.18]])
_HAIR = np.array([[0.05, 0.04, 0.04], [0.2, 0.12, 0.07], [0.45, 0.3, 0.15], [0.8, 0.68, 0.4], [0.6, 0.6, 0.6]])

LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class Identity:
    pid: int
    # body (units of body height)
    head_r: float
    shoulder: float  # half width at the shoulders
    waist: float  # half width at the waist
    waist_v: float  # height of the waist line from the top
    leg_w: float  # half width of one leg
    arm_w: float
    # clothing
    sleeve: float  # fraction of the arm covered by the sleeve
    lower_kind: str
    hem_v: float  # where shorts/skirt end
    upper_pattern: str
    upper_period: float
    upper_phase: float
    lower_pattern: str
    lower_period: float
    long_hair: bool
    hat: bool
    bag: str
    bag_size: float
    bag_side: int  # +1 right, -1 left (shoulder bag)
    # material appearance, rows indexed by the material constants above
    rgb: np.ndarray  # N_MATERIALS x 3, visible colour
    ir: np.ndarray  # N_MATERIALS, infrared intensity (NIR/thermal response)


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float) -> np.ndarray:
    c = table[rng.integers(len(table))] + rng.normal(0, jitter, 3)
    return np.clip(c, 0.0, 1.0)


def sample_identity(pid: int, rng: np.random.Generator, *, ir_luma_weight: float = 0.3) -> Identity:
    """Draw one identity. ``ir_luma_weight`` is how much of a material's infrared intensity follows its
    visible luminance (the rest is the per-identity material response)."""
    rgb = np.zeros((N_MATERIALS, 3))
    rgb[SKIN] = _pick(rng, _SKIN, 0.03)
    rgb[HAIR] = _pick(rng, _HAIR, 0.03)
    for m in (UPPER, UPPER2, LOWER, LOWER2, SHOES, BAG, HAT):
        rgb[m] = _pick(rng, _PALETTE, 0.06)
    # make pattern colours differ visibly from the base colour
    for base, second in ((UPPER, UPPER2), (LOWER, LOWER2)):
        if np.abs(rgb[base] - rgb[second]).sum() < 0.5:
            rgb[second] = 1.0 - rgb[base]
    material = rng.uniform(0.05, 0.95, N_MATERIALS)
    ir = np.clip(ir_luma_weight * (rgb @ LUMA) + (1 - ir_luma_weight) * material, 0.0, 1.0)
    ir[SKIN] = rng.uniform(0.6, 0.9)  # skin is bright in NIR and warm in thermal
    ir[HAIR] = rng.uniform(0.1, 0.45)
    for base, second in ((UPPER, UPPER2), (LOWER, LOWER2)):  # keep some pattern contrast in IR
        if abs(ir[base] - ir[second]) < 0.15:
            ir[second] = np.clip(ir[base] + (0.25 if ir[base] < 0.5 else -0.25), 0, 1)
    lower_kind = LOWER_KINDS[rng.integers(len(LOWER_KINDS))]
    return Identity(
        pid=pid,
        head_r=rng.uniform(0.055, 0.075),
        shoulder=rng.uniform(0.085, 0.125),
        waist=rng.uniform(0.06, 0.1),
        waist_v=rng.uniform(0.44, 0.56),
        leg_w=rng.uniform(0.03, 0.05),
        arm_w=rng.uniform(0.022, 0.035),
        sleeve=rng.choice([0.3, 1.0, 1.0]) if rng.random() < 0.8 else rng.uniform(0.2, 1.0),
        lower_kind=lower_kind,
        hem_v=rng.uniform(0.64, 0.72) if lower_kind == "shorts" else rng.uniform(0.7, 0.82),
        upper_pattern=PATTERNS[rng.integers(len(PATTERNS))],
        upper_period=rng.uniform(0.025, 0.07),
        upper_phase=rng.uniform(0, 1),
        lower_pattern=LOWER_PATTERNS[rng.integers(len(LOWER_PATTERNS))],
        lower_period=rng.uniform(0.03, 0.07),
        long_hair=bool(rng.random() < 0.35),
        hat=bool(rng.random() < 0.15),
        bag=BAGS[rng.integers(len(BAGS))],
        bag_size=rng.uniform(0.8, 1.25),
        bag_side=int(rng.choice([-1, 1])),
        rgb=rgb,
        ir=ir,
    )
