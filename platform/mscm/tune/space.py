"""Search spaces: which run-config keys a hyperparameter search varies, over what ranges, towards
which objective, with what budget, resources and sampler. Format: ``docs/search-spaces.md``.

:func:`load_search_space` validates a YAML file completely before anything runs: every error names
the file and the key. :meth:`SearchSpace.define_by_run` is the Optuna define-by-run function that
Ray's OptunaSearch calls; it is a bound method of a module-level frozen dataclass, so the searcher
pickles (stack.md P5).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Union, get_args, get_origin

import yaml

from ..config import ConfigError, RunConfig, apply_overrides, flatten, has_dotted, load_run_config
from ..config.schema import Metric
from ..config.loader import _type_name, read_yaml
from . import checks
from .sampler import SamplerSpec, parse_sampler
from .spaces import find_space

PARAM_TYPES = ("float", "log-float", "int", "categorical")
PARAM_KEYS = {
    "float": {"type", "low", "high", "step", "condition"},
    "log-float": {"type", "low", "high", "condition"},
    "int": {"type", "low", "high", "step", "condition"},
    "categorical": {"type", "choices", "condition"},
}
DIRECTIONS = {"maximize": "max", "minimize": "min"}
SCHEDULERS = ("asha", "none")
TOP_KEYS = {"name", "description", "base", "overrides", "parameters", "objective", "budget", "resources", "sampler"}
TOP_REQUIRED = {"base", "parameters", "objective", "budget"}
BUDGET_KEYS = {"trials", "epochs", "scheduler", "grace_period", "reduction_factor", "max_concurrent_trials",
               "time_budget_s"}
ASHA_KEYS = ("grace_period", "reduction_factor")
RESOURCE_KEYS = {"workers", "cpus_per_worker", "gpus_per_worker"}

# Run-config keys owned by the budget/resources sections: one place to set them, and fixed per
# search (ASHA's max_t is the epoch count; Tune reserves the same resources for every trial).
OWNED_KEYS = {
    "schedule.epochs": "budget.epochs",
    "train.num_workers": "resources.workers",
    "train.cpus_per_worker": "resources.cpus_per_worker",
    "train.gpus_per_worker": "resources.gpus_per_worker",
    "train.use_gpu": "resources.gpus_per_worker",
}

_PRIMITIVES = (type(None), bool, int, float, str)  # what optuna's CategoricalDistribution accepts


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps ``True``, ``1`` and ``1.0`` apart (YAML values of different fields)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Condition:
    """Active when parameter ``param`` is active and was sampled as one of ``values``."""

    param: str
    values: tuple[Any, ...]

    def holds(self, sampled: Mapping[str, Any]) -> bool:
        return self.param in sampled and any(_same(sampled[self.param], v) for v in self.values)


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
            return any(_same(value, c) for c in self.choices)
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
    epochs: int  # = ASHA max_t: one report per epoch (stack.md 2.4)
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


# ------------------------------------------------------------------------------------------
# loading


def load_search_space(name_or_path: str | Path) -> SearchSpace:
    """Load and fully validate a search space (a YAML path, or the name of a shipped space)."""
    path = find_space(name_or_path)
    return parse_search_space(read_yaml(path), source=str(path), folder=path.parent, name=path.stem)


def parse_search_space(data: dict, *, source: str, folder: Path, name: str) -> SearchSpace:
    """Validate the mapping ``data`` read from ``source``; relative ``base`` paths start at ``folder``."""
    checks.mapping(data, source, "", allowed=TOP_KEYS, required=TOP_REQUIRED)
    base_cfg = _load_base(data["base"], source, folder)
    fixed = _parse_overrides(data.get("overrides"), source)
    template = _apply(base_cfg, fixed, source, lambda k: f"overrides.{k}")

    objectives = _parse_objectives(data["objective"], source)
    budget = _parse_budget(data["budget"], source, template, len(objectives))
    resources = _parse_resources(data.get("resources"), source, template)
    derived = {"schedule.epochs": budget.epochs, "train.num_workers": resources.workers,
               "train.cpus_per_worker": resources.cpus_per_worker, "train.use_gpu": resources.use_gpu}
    if resources.use_gpu:
        derived["train.gpus_per_worker"] = resources.gpus_per_worker
    template = _apply(template, derived, source, lambda k: OWNED_KEYS.get(k, k))

    parameters = _parse_parameters(data["parameters"], source, template, fixed)
    _check_metric_every_epoch(objectives, template, parameters, fixed, source)
    sampler = parse_sampler(
        data.get("sampler"), source, conditional=any(p.conditions for p in parameters), objectives=len(objectives)
    )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(source, "description", f"must be text, got {description!r}")
    space_name = checks.text(data.get("name", name), source, "name")
    return SearchSpace(
        name=space_name, source=source, description=description.strip(), base=str(data["base"]),
        overrides={**fixed, **derived}, template=template, parameters=parameters, objectives=objectives,
        budget=budget, resources=resources, sampler=sampler,
    )


def _check_metric_every_epoch(objectives: tuple[Objective, ...], template: RunConfig,
                              parameters: tuple[Parameter, ...], fixed: dict[str, Any], source: str) -> None:
    """An evaluation objective must be evaluated every epoch: Tune rejects a report without the metric
    (strict metric checking) and ASHA would otherwise compare stale evaluations at its rungs."""
    evaluated = [o.metric for o in objectives if o.metric.removesuffix("_std") in get_args(Metric)]
    if not evaluated:
        return
    key = "eval.every_n_epochs"
    if any(p.key == key for p in parameters):
        raise ConfigError(source, f"parameters.{key}",
                          f"cannot be searched: the objective {evaluated[0]!r} must be evaluated every epoch")
    every = template.eval.every_n_epochs
    if every != 1:
        where = f"overrides.{key}" if key in fixed else f"base ({key})"
        raise ConfigError(source, where, f"is {every}, but the objective {evaluated[0]!r} is read in every epoch's "
                          "report (Tune requires it; ASHA compares it at each rung): evaluate every epoch (1)")


def _load_base(base: Any, source: str, folder: Path) -> RunConfig:
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(source, "base", f"must be a built-in recipe name (e.g. sysu, smoke) or a path, got {base!r}")
    ref: str | Path = base
    path = Path(base).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in base:
        ref = path if path.is_absolute() else folder / path
    try:
        return load_run_config(ref)
    except ConfigError as e:
        raise ConfigError(source, "base", str(e)) from None


def _apply(cfg: RunConfig, overrides: dict[str, Any], source: str, where) -> RunConfig:
    """``apply_overrides`` whose errors name this file and the section key (``where(run_key)``)."""
    try:
        return apply_overrides(cfg, overrides, source=source)
    except ConfigError as e:
        raise ConfigError(source, where(e.key), e.problem) from None


def _field_type(key: str) -> Any:
    """The annotation of the run-config field ``key``; ``None`` for a section (a nested dataclass)."""
    tp: Any = RunConfig
    for part in key.split("."):
        tp = typing.get_type_hints(tp)[part]
    return None if dataclasses.is_dataclass(tp) else tp


def _run_key(key: Any, source: str, where: str) -> Any:
    """Check that ``key`` names a run-config value; returns its annotation."""
    if not isinstance(key, str) or not has_dotted(RunConfig, key):
        raise ConfigError(source, where, f"unknown run-config key {key!r}")
    tp = _field_type(key)
    if tp is None:
        raise ConfigError(source, where, f"{key!r} is a section of the run config; name one of its fields")
    if key in OWNED_KEYS:
        raise ConfigError(source, where, f"{key} is fixed per search: set it with {OWNED_KEYS[key]}")
    return tp


def _parse_overrides(raw: Any, source: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "overrides", f"must be a mapping of dotted run-config keys, got {type(raw).__name__}")
    flat = flatten(raw)  # nested sections and dotted keys both work
    for key in flat:
        _run_key(key, source, f"overrides.{key}")
    return flat


def _parse_objectives(raw: Any, source: str) -> tuple[Objective, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ConfigError(source, "objective", "needs at least one {metric, direction}")
    out: list[Objective] = []
    for i, item in enumerate(items):
        where = f"objective[{i}]" if isinstance(raw, list) else "objective"
        checks.mapping(item, source, where, allowed={"metric", "direction"}, required={"metric", "direction"})
        metric = checks.text(item["metric"], source, f"{where}.metric")
        direction = checks.one_of(item["direction"], tuple(DIRECTIONS), source, f"{where}.direction")
        if any(o.metric == metric for o in out):
            raise ConfigError(source, f"{where}.metric", f"{metric!r} is listed twice")
        out.append(Objective(metric, direction))
    return tuple(out)


def _parse_budget(raw: Any, source: str, template: RunConfig, n_objectives: int) -> Budget:
    checks.mapping(raw, source, "budget", allowed=BUDGET_KEYS, required={"trials"})
    trials = checks.bounded(raw["trials"], source, "budget.trials", integer=True, ge=1)
    epochs = template.schedule.epochs
    if "epochs" in raw:
        epochs = checks.bounded(raw["epochs"], source, "budget.epochs", integer=True, ge=1)
    scheduler = checks.one_of(raw.get("scheduler", "asha"), SCHEDULERS, source, "budget.scheduler")
    kw: dict[str, Any] = {}
    if scheduler == "none":
        for key in ASHA_KEYS:
            if key in raw:
                raise ConfigError(source, f"budget.{key}", "only applies to scheduler: asha")
    else:
        if n_objectives > 1:
            raise ConfigError(
                source, "budget.scheduler", "ASHA compares one metric; use scheduler: none with several objectives"
            )
        if "grace_period" in raw:
            kw["grace_period"] = checks.bounded(raw["grace_period"], source, "budget.grace_period", integer=True, ge=1)
            if kw["grace_period"] > epochs:
                raise ConfigError(
                    source, "budget.grace_period", f"{kw['grace_period']} is beyond the {epochs} epochs of a trial"
                )
        if "reduction_factor" in raw:
            kw["reduction_factor"] = checks.bounded(raw["reduction_factor"], source, "budget.reduction_factor", gt=1)
    for key, integer in (("max_concurrent_trials", True), ("time_budget_s", False)):
        if raw.get(key) is not None:
            kw[key] = checks.bounded(raw[key], source, f"budget.{key}", integer=integer, gt=0)
    return Budget(trials=trials, epochs=epochs, scheduler=scheduler, **kw)


def _parse_resources(raw: Any, source: str, template: RunConfig) -> Resources:
    t = template.train
    raw = checks.mapping({} if raw is None else raw, source, "resources", allowed=RESOURCE_KEYS)
    workers = t.num_workers
    if "workers" in raw:
        workers = checks.bounded(raw["workers"], source, "resources.workers", integer=True, ge=1)
    cpus = t.cpus_per_worker
    if "cpus_per_worker" in raw:
        cpus = checks.bounded(raw["cpus_per_worker"], source, "resources.cpus_per_worker", gt=0)
    gpus = t.gpus_per_worker if t.use_gpu else 0
    if "gpus_per_worker" in raw:
        gpus = checks.bounded(raw["gpus_per_worker"], source, "resources.gpus_per_worker", ge=0)
    return Resources(workers=workers, cpus_per_worker=float(cpus), gpus_per_worker=float(gpus))


# -- parameters ------------------------------------------------------------------------------


def _kinds(tp: Any) -> set[str]:
    """Which numeric parameter types a field annotated ``tp`` accepts (``int`` fits float fields)."""
    args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    kinds: set[str] = set()
    for a in args:
        if a is float:
            kinds |= {"float", "int"}
        elif a is int:
            kinds.add("int")
    return kinds


def _parse_parameters(raw: Any, source: str, template: RunConfig, fixed: dict[str, Any]) -> tuple[Parameter, ...]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(source, "parameters", "must be a non-empty mapping of run-config key -> spec")
    specs: dict[str, dict] = {}
    params: dict[str, Parameter] = {}
    for key, spec in raw.items():
        where = f"parameters.{key}"
        tp = _run_key(key, source, where)
        if key in fixed:
            raise ConfigError(source, where, f"{key} is also fixed in overrides; keep one of the two")
        if not isinstance(spec, dict):
            raise ConfigError(source, where, f"must be a mapping with a type ({', '.join(PARAM_TYPES)})")
        kind = checks.one_of(spec.get("type"), PARAM_TYPES, source, f"{where}.type")
        needs = {"choices"} if kind == "categorical" else {"low", "high"}
        checks.mapping(spec, source, where, allowed=PARAM_KEYS[kind], required={"type"} | needs)
        specs[key] = spec
        params[key] = _parse_values(key, kind, spec, tp, source, where)
    with_conditions = {
        key: dataclasses.replace(p, conditions=_parse_conditions(key, specs[key].get("condition"), params, source))
        for key, p in params.items()
    }
    ordered = _dependency_order(with_conditions, source)
    for p in ordered:
        for name, value in p.extremes():
            try:
                apply_overrides(template, {p.key: value}, source=source)
            except ConfigError as e:
                raise ConfigError(
                    source, f"parameters.{p.key}.{name}",
                    f"{value!r} is rejected by the run config ({e.key}: {e.problem})",
                ) from None
    return ordered


def _parse_values(key: str, kind: str, spec: dict, tp: Any, source: str, where: str) -> Parameter:
    if kind == "categorical":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(source, f"{where}.choices", "must be a non-empty list")
        for i, c in enumerate(choices):
            flat = c if isinstance(c, list) else [c]
            if not all(isinstance(v, _PRIMITIVES) for v in flat):
                raise ConfigError(source, f"{where}.choices[{i}]", f"must be a scalar or a list of scalars, got {c!r}")
            if any(_same(c, o) for o in choices[:i]):
                raise ConfigError(source, f"{where}.choices[{i}]", f"{c!r} is listed twice")
        labels = tuple(
            yaml.safe_dump(c, default_flow_style=True).strip() if isinstance(c, list) else c for c in choices
        )
        if len(set(map(repr, labels))) != len(labels):
            raise ConfigError(source, f"{where}.choices", "a text choice equals the YAML text of a list choice")
        return Parameter(key, kind, choices=tuple(choices), labels=labels)

    if ("int" if kind == "int" else "float") not in _kinds(tp):
        hint = "int or categorical" if "int" in _kinds(tp) else "categorical"
        raise ConfigError(
            source, f"{where}.type", f"{key} is {_type_name(tp)}: a {kind} parameter cannot set it (use {hint})"
        )
    integer = kind == "int"
    low = checks.number(spec["low"], source, f"{where}.low", integer=integer)
    high = checks.number(spec["high"], source, f"{where}.high", integer=integer)
    if low >= high:
        raise ConfigError(source, where, f"empty or inverted range: low {low!r} >= high {high!r}")
    if kind == "log-float" and low <= 0:
        raise ConfigError(source, f"{where}.low", f"a log-float range must be positive, got low {low!r}")
    step = None
    if "step" in spec:
        step = checks.bounded(spec["step"], source, f"{where}.step", integer=integer, gt=0)
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
            raise ConfigError(source, f"{where}.step", f"high - low = {high - low!r} is not a multiple of step {step!r}")
    if kind != "int":
        low, high = float(low), float(high)
        step = None if step is None else float(step)
    return Parameter(key, kind, low=low, high=high, step=step)


def _parse_conditions(key: str, raw: Any, params: dict[str, Parameter], source: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        where = f"parameters.{key}.condition" + (f"[{i}]" if isinstance(raw, list) else "")
        checks.mapping(item, source, where, allowed={"param", "in", "equals"}, required={"param"})
        if ("in" in item) == ("equals" in item):
            raise ConfigError(source, where, "needs exactly one of 'in: [values]' or 'equals: value'")
        other = item["param"]
        if other == key:
            raise ConfigError(source, f"{where}.param", "a parameter cannot depend on itself")
        if other not in params:
            raise ConfigError(source, f"{where}.param", f"{other!r} is not a parameter of this search space")
        dep = params[other]
        if dep.type in ("float", "log-float"):
            raise ConfigError(
                source, f"{where}.param", f"{other} is a {dep.type} parameter; conditions need a categorical or int one"
            )
        values = [item["equals"]] if "equals" in item else item["in"]
        vkey = f"{where}.equals" if "equals" in item else f"{where}.in"
        if not isinstance(values, list) or not values:
            raise ConfigError(source, vkey, "must be a non-empty list of values")
        for v in values:
            if not dep.can_take(v):
                raise ConfigError(source, vkey, f"{v!r} is never sampled for {other}")
        out.append(Condition(other, tuple(values)))
    return tuple(out)


def _dependency_order(params: dict[str, Parameter], source: str) -> tuple[Parameter, ...]:
    """Parameters with every condition's parameter before them; file order otherwise. Rejects cycles."""
    done: dict[str, Parameter] = {}
    pending = list(params)
    while pending:
        ready = [k for k in pending if all(c.param in done for c in params[k].conditions)]
        if not ready:
            cycle = _cycle(params, pending)
            raise ConfigError(source, f"parameters.{cycle[0]}.condition", f"cyclic condition: {' -> '.join(cycle)}")
        done[ready[0]] = params[ready[0]]
        pending.remove(ready[0])
    return tuple(done.values())


def _cycle(params: dict[str, Parameter], pending: list[str]) -> list[str]:
    """A cycle among the ``pending`` parameters (each of which waits on another pending one)."""
    path = [pending[0]]
    while True:
        nxt = next(c.param for c in params[path[-1]].conditions if c.param in pending)
        if nxt in path:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
