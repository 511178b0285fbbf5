"""The sections of a search-space file, declared as typed dataclasses like the run config's
(:mod:`mscm.config.schema`) and read by the same :func:`mscm.config.from_dict`, so a wrong type, an
unknown key or an out-of-range number gets the same message in either file. What one section cannot
judge alone (a range against the run config, a condition against another parameter) is checked by
:mod:`mscm.tune.space_loader`. Format: ``docs/search-spaces.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..config.loader import spec

NOT_GIVEN: Any = object()  # a condition's ``equals`` that the file does not set (null is a value)


@dataclass(frozen=True)
class BudgetSection:
    trials: int = spec(ge=1)
    epochs: int | None = spec(None, ge=1, doc="epochs per trial (ASHA's max_t); null: the base's schedule.epochs")
    scheduler: Literal["asha", "none"] = "asha"
    grace_period: int | None = spec(None, ge=1, doc="ASHA only; default 1")
    reduction_factor: float | None = spec(None, gt=1, doc="ASHA only; default 4")
    max_concurrent_trials: int | None = spec(None, gt=0)
    time_budget_s: float | None = spec(None, gt=0)


@dataclass(frozen=True)
class ResourcesSection:
    """Null keys keep the base config's ``train.*`` value."""

    workers: int | None = spec(None, ge=1)
    cpus_per_worker: float | None = spec(None, gt=0)
    gpus_per_worker: float | None = spec(None, ge=0, doc="0 = CPU training")


@dataclass(frozen=True)
class ConditionSection:
    param: str
    in_: list[Any] | None = spec(None, key="in")
    equals: Any = NOT_GIVEN


@dataclass(frozen=True)
class FloatParam:
    type: Literal["float"]
    low: float
    high: float
    step: float | None = spec(None, gt=0)
    condition: Any = None


@dataclass(frozen=True)
class LogFloatParam:
    type: Literal["log-float"]
    low: float
    high: float
    condition: Any = None


@dataclass(frozen=True)
class IntParam:
    type: Literal["int"]
    low: int
    high: int
    step: int | None = spec(None, gt=0)
    condition: Any = None


@dataclass(frozen=True)
class CategoricalParam:
    type: Literal["categorical"]
    choices: list[Any]
    condition: Any = None


PARAM_SECTIONS: dict[str, type] = {
    "float": FloatParam,
    "log-float": LogFloatParam,
    "int": IntParam,
    "categorical": CategoricalParam,
}
ParamType = Literal["float", "log-float", "int", "categorical"]


@dataclass(frozen=True)
class SpaceFile:
    """The top level. ``parameters`` maps run-config keys to one of :data:`PARAM_SECTIONS`;
    ``objective`` is one ``{metric, direction}`` (:class:`mscm.tune.space.Objective`) or a list of
    them; ``sampler`` is read by :func:`mscm.tune.sampler.parse_sampler`."""

    base: str
    parameters: dict[str, Any]
    objective: dict[str, Any] | list[Any]
    budget: BudgetSection
    name: str | None = None
    description: str = ""
    overrides: dict[str, Any] | None = None
    resources: ResourcesSection | None = None
    sampler: dict[str, Any] | None = None
