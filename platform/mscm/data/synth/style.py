"""How hard the synthetic dataset is: the generator's difficulty knobs (``data.synthetic`` in the config).

The defaults are the realistic generator: infrared intensity only loosely follows visible luminance,
cluttered backgrounds, full pose and framing variation. Lower values make a dataset that a small
network learns within CPU minutes (the smoke recipe) while an untrained one still scores near chance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Style:
    ir_coupling: float = 0.3  # share of a material's infrared intensity that follows its visible luminance
    clutter: float = 1.0  # multiplies each camera's mean number of background objects
    variation: float = 1.0  # multiplies the per-image pose, scale and position jitter

    def __post_init__(self) -> None:
        if not 0.0 <= self.ir_coupling <= 1.0:
            raise ValueError(f"ir_coupling must be in [0, 1], got {self.ir_coupling}")
        if self.clutter < 0 or self.variation < 0:
            raise ValueError(f"clutter and variation must be >= 0, got {self.clutter}, {self.variation}")

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def tag(self) -> str:
        """Folder-name suffix: empty for the default style, so existing dataset folders keep their names."""
        if self == Style():
            return ""
        return "-" + "-".join(f"{k[:3]}{v:g}" for k, v in self.as_dict().items())
