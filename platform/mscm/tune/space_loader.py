"""Read a search-space file into a :class:`~mscm.tune.space.SearchSpace`, validated completely
before anything runs. Each section's shape, types and bounds are checked by the run config's own
machinery (:func:`mscm.config.from_dict` on the dataclasses of :mod:`mscm.tune.space_file`); this
module adds what needs the run config or other sections: ranges the run config must accept,
conditions on other parameters, the budget against the epochs. Every error names the file and key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml

from ..config import ConfigError, RunConfig, apply_overrides, flatten, from_dict, has_dotted, load_run_config
from ..config.loader import _type_name, check_value, read_yaml
from ..config.schema import Metric
from .sampler import parse_sampler
from .space import Budget, Condition, Objective, Parameter, Resources, SearchSpace, same_value
from .space_file import (
    NOT_GIVEN,
    PARAM_SECTIONS,
    BudgetSection,
    ConditionSection,
    ParamType,
    ResourcesSection,
    SpaceFile,
)
from .spaces import find_space

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


def load_search_space(name_or_path: str | Path) -> SearchSpace:
    """Load and fully validate a search space (a YAML path, or the name of a shipped space)."""
    path = find_space(name_or_path)
    return parse_search_space(read_yaml(path), source=str(path), folder=path.parent, name=path.stem)


def parse_search_space(data: dict, *, source: str, folder: Path, name: str) -> SearchSpace:
    """Validate the mapping ``data`` read from ``source``; relative ``base`` paths start at ``folder``."""
    top = from_dict(SpaceFile, data, source=source)
    fixed = _parse_overrides(top.overrides, source)
    template = _apply(_load_base(top.base, source, folder), fixed, source, lambda k: f"overrides.{k}")
    objectives = _parse_objectives(top.objective, source)
    budget = _resolve_budget(top.budget, data["budget"], source, template, len(objectives))
    resources = _resolve_resources(top.resources or ResourcesSection(), template)
    derived = _derived_keys(budget, resources)
    template = _apply(template, derived, source, lambda k: OWNED_KEYS.get(k, k))
    parameters = _parse_parameters(top.parameters, source, template, fixed)
    _check_metric_every_epoch(objectives, template, parameters, fixed, source)
    sampler = parse_sampler(
        top.sampler, source, conditional=any(p.conditions for p in parameters), objectives=len(objectives)
    )
    space_name = top.name if top.name is not None else name
    if not space_name.strip():
        raise ConfigError(source, "name", "must be a non-empty string")
    return SearchSpace(
        name=space_name,
        source=source,
        description=top.description.strip(),
        base=top.base,
        overrides={**fixed, **derived},
        template=template,
        parameters=parameters,
        objectives=objectives,
        budget=budget,
        resources=resources,
        sampler=sampler,
    )


def _derived_keys(budget: Budget, resources: Resources) -> dict[str, Any]:
    derived: dict[str, Any] = {
        "schedule.epochs": budget.epochs,
        "train.num_workers": resources.workers,
        "train.cpus_per_worker": resources.cpus_per_worker,
        "train.use_gpu": resources.use_gpu,
    }
    if resources.use_gpu:
        derived["train.gpus_per_worker"] = resources.gpus_per_worker
    return derived


def _check_metric_every_epoch(
    objectives: tuple[Objective, ...],
    template: RunConfig,
    parameters: tuple[Parameter, ...],
    fixed: dict[str, Any],
    source: str,
) -> None:
    """An evaluation objective must be evaluated every epoch: Tune rejects a report without the metric
    (strict metric checking) and ASHA would otherwise compare stale evaluations at its rungs."""
    evaluated = [o.metric for o in objectives if o.metric.removesuffix("_std") in get_args(Metric)]
    if not evaluated:
        return
    key = "eval.every_n_epochs"
    if any(p.key == key for p in parameters):
        raise ConfigError(
            source,
            f"parameters.{key}",
            f"cannot be searched: the objective {evaluated[0]!r} must be evaluated every epoch",
        )
    every = template.eval.every_n_epochs
    if every != 1:
        where = f"overrides.{key}" if key in fixed else f"base ({key})"
        raise ConfigError(
            source,
            where,
            f"is {every}, but the objective {evaluated[0]!r} is read in every epoch's "
            "report (Tune requires it; ASHA compares it at each rung): evaluate every epoch (1)",
        )


def _load_base(base: str, source: str, folder: Path) -> RunConfig:
    if not base.strip():
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


def _parse_overrides(raw: dict[str, Any] | None, source: str) -> dict[str, Any]:
    flat = flatten(raw or {})  # nested sections and dotted keys both work
    for key in flat:
        _run_key(key, source, f"overrides.{key}")
    return flat


def _parse_objectives(raw: dict[str, Any] | list[Any], source: str) -> tuple[Objective, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ConfigError(source, "objective", "needs at least one {metric, direction}")
    out: list[Objective] = []
    for i, item in enumerate(items):
        where = f"objective[{i}]" if isinstance(raw, list) else "objective"
        objective = from_dict(Objective, item, source=source, prefix=where)
        if not objective.metric.strip():
            raise ConfigError(source, f"{where}.metric", "must be a non-empty string")
        if any(o.metric == objective.metric for o in out):
            raise ConfigError(source, f"{where}.metric", f"{objective.metric!r} is listed twice")
        out.append(objective)
    return tuple(out)


def _resolve_budget(section: BudgetSection, raw: dict, source: str, template: RunConfig, n_objectives: int) -> Budget:
    epochs = section.epochs if section.epochs is not None else template.schedule.epochs
    if section.scheduler == "none":
        for key in ("grace_period", "reduction_factor"):
            if key in raw:
                raise ConfigError(source, f"budget.{key}", "only applies to scheduler: asha")
    elif n_objectives > 1:
        raise ConfigError(
            source, "budget.scheduler", "ASHA compares one metric; use scheduler: none with several objectives"
        )
    grace = section.grace_period if section.grace_period is not None else 1
    if grace > epochs:
        raise ConfigError(source, "budget.grace_period", f"{grace} is beyond the {epochs} epochs of a trial")
    return Budget(
        trials=section.trials,
        epochs=epochs,
        scheduler=section.scheduler,
        grace_period=grace,
        reduction_factor=section.reduction_factor if section.reduction_factor is not None else 4,
        max_concurrent_trials=section.max_concurrent_trials,
        time_budget_s=section.time_budget_s,
    )


def _resolve_resources(section: ResourcesSection, template: RunConfig) -> Resources:
    t = template.train
    gpus = section.gpus_per_worker
    if gpus is None:
        gpus = t.gpus_per_worker if t.use_gpu else 0
    return Resources(
        workers=section.workers if section.workers is not None else t.num_workers,
        cpus_per_worker=float(section.cpus_per_worker if section.cpus_per_worker is not None else t.cpus_per_worker),
        gpus_per_worker=float(gpus),
    )


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


def _parse_parameters(
    raw: dict[str, Any], source: str, template: RunConfig, fixed: dict[str, Any]
) -> tuple[Parameter, ...]:
    if not raw:
        raise ConfigError(source, "parameters", "must be a non-empty mapping of run-config key -> spec")
    sections: dict[str, Any] = {}
    params: dict[str, Parameter] = {}
    for key, spec in raw.items():
        where = f"parameters.{key}"
        tp = _run_key(key, source, where)
        if key in fixed:
            raise ConfigError(source, where, f"{key} is also fixed in overrides; keep one of the two")
        if not isinstance(spec, dict):
            raise ConfigError(source, where, f"must be a mapping with a type ({', '.join(PARAM_SECTIONS)})")
        kind = check_value(spec.get("type"), ParamType, source, f"{where}.type")
        sections[key] = from_dict(PARAM_SECTIONS[kind], spec, source=source, prefix=where)
        params[key] = _parse_values(key, sections[key], tp, source, where)
    with_conditions = {
        key: dataclasses.replace(p, conditions=_parse_conditions(key, sections[key].condition, params, source))
        for key, p in params.items()
    }
    ordered = _dependency_order(with_conditions, source)
    for p in ordered:
        _check_extremes(p, template, source)
    return ordered


def _check_extremes(p: Parameter, template: RunConfig, source: str) -> None:
    """Every bound of what can be sampled must be a valid run config."""
    for name, value in p.extremes():
        try:
            apply_overrides(template, {p.key: value}, source=source)
        except ConfigError as e:
            raise ConfigError(
                source,
                f"parameters.{p.key}.{name}",
                f"{value!r} is rejected by the run config ({e.key}: {e.problem})",
            ) from None


def _parse_values(key: str, section: Any, tp: Any, source: str, where: str) -> Parameter:
    if section.type == "categorical":
        return _parse_choices(key, section.choices, source, where)
    kind = section.type
    if ("int" if kind == "int" else "float") not in _kinds(tp):
        hint = "int or categorical" if "int" in _kinds(tp) else "categorical"
        raise ConfigError(
            source, f"{where}.type", f"{key} is {_type_name(tp)}: a {kind} parameter cannot set it (use {hint})"
        )
    low, high = section.low, section.high
    if low >= high:
        raise ConfigError(source, where, f"empty or inverted range: low {low!r} >= high {high!r}")
    if kind == "log-float" and low <= 0:
        raise ConfigError(source, f"{where}.low", f"a log-float range must be positive, got low {low!r}")
    step = getattr(section, "step", None)
    if step is not None:
        n = (high - low) / step
        if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
            raise ConfigError(
                source, f"{where}.step", f"high - low = {high - low!r} is not a multiple of step {step!r}"
            )
    return Parameter(key, kind, low=low, high=high, step=step)


def _parse_choices(key: str, choices: list[Any], source: str, where: str) -> Parameter:
    if not choices:
        raise ConfigError(source, f"{where}.choices", "must be a non-empty list")
    for i, c in enumerate(choices):
        flat = c if isinstance(c, list) else [c]
        if not all(isinstance(v, _PRIMITIVES) for v in flat):
            raise ConfigError(source, f"{where}.choices[{i}]", f"must be a scalar or a list of scalars, got {c!r}")
        if any(same_value(c, o) for o in choices[:i]):
            raise ConfigError(source, f"{where}.choices[{i}]", f"{c!r} is listed twice")
    # List-valued choices (milestones) are offered to Optuna as their YAML text and mapped back.
    labels = tuple(yaml.safe_dump(c, default_flow_style=True).strip() if isinstance(c, list) else c for c in choices)
    if len(set(map(repr, labels))) != len(labels):
        raise ConfigError(source, f"{where}.choices", "a text choice equals the YAML text of a list choice")
    return Parameter(key, "categorical", choices=tuple(choices), labels=labels)


def _parse_conditions(key: str, raw: Any, params: dict[str, Parameter], source: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        where = f"parameters.{key}.condition" + (f"[{i}]" if isinstance(raw, list) else "")
        out.append(
            _parse_condition(key, from_dict(ConditionSection, item, source=source, prefix=where), params, source, where)
        )
    return tuple(out)


def _parse_condition(
    key: str, cond: ConditionSection, params: dict[str, Parameter], source: str, where: str
) -> Condition:
    if (cond.in_ is not None) == (cond.equals is not NOT_GIVEN):
        raise ConfigError(source, where, "needs exactly one of 'in: [values]' or 'equals: value'")
    other = cond.param
    if other == key:
        raise ConfigError(source, f"{where}.param", "a parameter cannot depend on itself")
    if other not in params:
        raise ConfigError(source, f"{where}.param", f"{other!r} is not a parameter of this search space")
    dep = params[other]
    if dep.type in ("float", "log-float"):
        raise ConfigError(
            source, f"{where}.param", f"{other} is a {dep.type} parameter; conditions need a categorical or int one"
        )
    values = [cond.equals] if cond.in_ is None else cond.in_
    vkey = f"{where}.equals" if cond.in_ is None else f"{where}.in"
    if not values:
        raise ConfigError(source, vkey, "must be a non-empty list of values")
    for v in values:
        if not dep.can_take(v):
            raise ConfigError(source, vkey, f"{v!r} is never sampled for {other}")
    return Condition(other, tuple(values))


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
            return path[path.index(nxt) :] + [nxt]
        path.append(nxt)
