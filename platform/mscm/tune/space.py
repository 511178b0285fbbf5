"""The search-space model: which run-config keys a hyperparameter search varies, over what ranges,
towards which objective, with what budget, resources and sampler. Files are read and validated by
:mod:`mscm.tune.space_loader` (format: ``docs/search-spaces.md``).

:meth:`SearchSpace.define_by_run` is the Optuna define-by-run function that Ray's OptunaSearch calls;
it is a bound method of a module-level frozen dataclass, so the searcher pickles (a closure would not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import ConfigError, RunConfig, apply_overrides
from .sampler import SamplerSpec

DIRECTIONS = {"maximize": "max", "minimize": "min"}  # Optuna's spelling -> Ray's


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True``, ``1`` and ``1.0`` apart (YAML values of different fields)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Condition:
    """Active when parameter ``param`` is active and was sampled as one of ``values``."""

    param: str
    values: tuple[Any, ...]

    def holds(self, sampled: Mapping[str, Any]) -> bool:
        return self.param in sampled and any(same_value(sampled[self.param], v) for v in self.values)


@dataclass(frozen=True)
class Parameter:
    """One searched run-config key. ``labels`` are the Optuna-safe names of ``choices`` (list-valued
    choices such as milestones are offered to Optuna as their YAML text and mapped back)."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    labels: tuple[Any, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def active(self, sampled: Mapping[str, Any]) -> bool:
        return all(c.holds(sampled) for c in self.conditions)

    def suggest(self, trial: Any) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step)
        if self.type == "log-float":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1)
        label = trial.suggest_categorical(self.key, list(self.labels))
        return self.choices[self.labels.index(label)]

    def extremes(self) -> list[tuple[str, Any]]:
        """The values that bound what can be sampled, named by their key in the file."""
        if self.type == "categorical":
            return [(f"choices[{i}]", c) for i, c in enumerate(self.choices)]
        cast = float if self.type in ("float", "log-float") else int
        return [("low", cast(self.low)), ("high", cast(self.high))]

    def can_take(self, value: Any) -> bool:
        """Whether ``value`` is a possible sample (used to check conditions)."""
        if self.type == "categorical":
            return any(same_value(value, c) for c in self.choices)
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
                return False
            return (value - self.low) % (self.step or 1) == 0
        return False  # float samples are never tested for equality


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Literal["maximize", "minimize"]

    @property
    def mode(self) -> str:
        """Ray's spelling of the direction (``max``/``min``)."""
        return DIRECTIONS[self.direction]


@dataclass(frozen=True)
class Budget:
    trials: int
    epochs: int  # = ASHA max_t: one report per epoch (docs/stack.md 2.4)
    scheduler: Literal["asha", "none"] = "asha"
    grace_period: int = 1
    reduction_factor: float = 4
    max_concurrent_trials: int | None = None
    time_budget_s: float | None = None


@dataclass(frozen=True)
class Resources:
    """Ray Train resources of every trial (written into ``train.*`` of the trial configs)."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float  # 0 = CPU training

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0


@dataclass(frozen=True)
class SearchSpace:
    name: str
    source: str  # the file it was loaded from
    description: str
    base: str  # the base as written: a recipe name or a path
    overrides: dict[str, Any]  # fixed for every trial, incl. schedule.epochs and train.* from budget/resources
    template: RunConfig  # base + overrides: the config every trial starts from
    parameters: tuple[Parameter, ...]  # in dependency order (a condition's parameter comes first)
    objectives: tuple[Objective, ...]
    budget: Budget
    resources: Resources
    sampler: SamplerSpec = field(default_factory=SamplerSpec)

    # -- what the tuner passes to OptunaSearch / ASHAScheduler --------------------------------
    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def metric(self) -> str | list[str]:
        """``metric=`` for OptunaSearch/ASHA: a name, or a list for multi-objective searches."""
        names = [o.metric for o in self.objectives]
        return names if self.multi_objective else names[0]

    @property
    def mode(self) -> str | list[str]:
        """``mode=`` for OptunaSearch/ASHA: ``max``/``min``, or a list for multi-objective searches."""
        modes = [o.mode for o in self.objectives]
        return modes if self.multi_objective else modes[0]

    @property
    def directions(self) -> list[str]:
        """``directions=`` for ``optuna.create_study``."""
        return [o.direction for o in self.objectives]

    def parameter(self, key: str) -> Parameter:
        for p in self.parameters:
            if p.key == key:
                return p
        raise KeyError(key)

    def define_by_run(self, trial: Any) -> dict[str, Any]:
        """Suggest every active parameter on ``trial`` (an ``optuna.Trial``) and return the sampled
        dotted overrides. Inactive conditional parameters are not suggested and keep the base value."""
        sampled: dict[str, Any] = {}
        for p in self.parameters:
            if p.active(sampled):
                sampled[p.key] = p.suggest(trial)
        return sampled

    def make_sampler(self):
        """A fresh ``optuna.samplers.BaseSampler`` as the ``sampler:`` section says."""
        return self.sampler.make()

    def run_config(self, overrides: Mapping[str, Any]) -> RunConfig:
        """The trial's run config: base + fixed overrides + the sampled ``overrides`` (validated).

        Every key must be a parameter of this space whose conditions hold; a missing parameter keeps
        the template value.
        """
        source = f"{self.source} (trial overrides)"
        keys = {p.key for p in self.parameters}
        for key in overrides:
            if key not in keys:
                raise ConfigError(source, str(key), "not a parameter of this search space")
        for p in self.parameters:
            if p.key in overrides and not p.active(overrides):
                raise ConfigError(source, p.key, "set although its condition does not hold")
        return apply_overrides(self.template, dict(overrides), source=source)

    def mlflow_params(self, overrides: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
        """The sampled overrides as flat MLflow params, valued exactly as the trial's full config is
        logged (``mscm.tracking.mlflow_run.config_params``), so the two never disagree on a key."""
        from ..tracking.mlflow_run import config_params

        logged = config_params(self.run_config(overrides))
        return {f"{prefix}{k}": logged[k] for k in overrides}
