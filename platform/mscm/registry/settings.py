"""Settings of a promotion: which registered model, which metric decides, by what margin, on how
many trials. Validated at the edge (:func:`promotion_settings`) like the run config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..config.loader import from_dict, spec
from ..config.schema import Metric, Protocol

ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"


@dataclass(frozen=True)
class PromotionSettings:
    registered_model: str | None = spec(None, doc="MLflow registered model; null = mscm-<dataset>")
    metric: Metric = spec("mAP", doc="metric that decides (also ranks the search's trials)")
    margin: float = spec(
        0.0,
        ge=0,
        le=1,
        doc="the candidate must beat the champion by more than this (a fraction: 0.01 = one percentage point)",
    )
    level: float = spec(0.05, gt=0, lt=1, doc="with confirmation: the one-sided Welch test's level (registry/gate.py)")
    protocol: Protocol | None = spec(None, doc="protocol that decides; null = mean over the dataset's protocols")
    trials: int = spec(10, ge=1, doc="gallery draws per protocol (SYSU, LLCM: 10 in the papers)")
    gallery_mode: Literal["single", "multi"] = spec("single", doc="drawn galleries; RegDB is always whole")

    def model_name(self, dataset: str) -> str:
        return self.registered_model or f"mscm-{dataset}"


def promotion_settings(
    values: dict[str, Any] | None = None, *, source: str = "promotion settings"
) -> PromotionSettings:
    """Typed settings from plain values (command-line options, YAML); ``None`` values mean the default."""
    given = {k: v for k, v in (values or {}).items() if v is not None}
    return from_dict(PromotionSettings, given, source=source)
