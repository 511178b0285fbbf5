"""The ``sampler:`` section of a search space: which Optuna sampler proposes the trials.

Ray's OptunaSearch takes a sampler *instance* (stack.md 2.3), so the spec is kept as plain data
(picklable, comparable) and :meth:`SamplerSpec.make` builds a fresh sampler on demand.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from . import checks

# Options each sampler accepts besides ``name`` and ``seed`` (the value says how to check it).
SAMPLER_OPTIONS: dict[str, dict[str, str]] = {
    "tpe": {"n_startup_trials": "count", "multivariate": "bool", "group": "bool", "constant_liar": "bool"},
    "random": {},
    "cmaes": {"n_startup_trials": "count"},
    "qmc": {"qmc_type": "qmc_type", "scramble": "bool"},
    "gp": {"n_startup_trials": "count"},
    "nsgaii": {"population_size": "population"},
}
SINGLE_OBJECTIVE_ONLY = ("cmaes",)
DEFAULT_SEED = 0


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"
    seed: int | None = DEFAULT_SEED
    options: dict[str, Any] = field(default_factory=dict)

    def make(self):
        """A new ``optuna.samplers.BaseSampler`` (each call gives a fresh, identically seeded one)."""
        import optuna

        s = optuna.samplers
        kw = dict(self.options)
        with warnings.catch_warnings():
            # group/multivariate TPE are flagged experimental; they are chosen on purpose here.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.name == "tpe":
                return s.TPESampler(seed=self.seed, **kw)
            if self.name == "random":
                return s.RandomSampler(seed=self.seed)
            if self.name == "cmaes":
                return s.CmaEsSampler(seed=self.seed, **kw)
            if self.name == "qmc":
                return s.QMCSampler(seed=self.seed, **kw)
            if self.name == "gp":
                return s.GPSampler(seed=self.seed, **kw)
            if self.name == "nsgaii":
                return s.NSGAIISampler(seed=self.seed, **kw)
        raise ConfigError("", "sampler.name", f"unknown sampler {self.name!r}")  # unreachable after parse


def parse_sampler(raw: Any, source: str, *, conditional: bool, objectives: int) -> SamplerSpec:
    """Validate the ``sampler:`` mapping. ``conditional``: the space has conditional parameters, for
    which TPE defaults to ``group: true`` (multivariate TPE over each set of co-occurring parameters)."""
    if raw is None:
        raw = {}
    names = tuple(SAMPLER_OPTIONS)
    raw = checks.mapping(raw, source, "sampler", allowed={"name", "seed", *{o for v in SAMPLER_OPTIONS.values() for o in v}})
    name = checks.one_of(raw.get("name", "tpe"), names, source, "sampler.name")
    for key in raw:
        if key not in ("name", "seed") and key not in SAMPLER_OPTIONS[name]:
            raise ConfigError(
                source, f"sampler.{key}",
                f"not an option of the {name} sampler (its options: {sorted(SAMPLER_OPTIONS[name]) or 'none'})",
            )
    seed = raw.get("seed", DEFAULT_SEED)
    if seed is not None:
        seed = checks.bounded(seed, source, "sampler.seed", integer=True, ge=0)
    options: dict[str, Any] = {}
    for key, kind in SAMPLER_OPTIONS[name].items():
        if key not in raw:
            continue
        where = f"sampler.{key}"
        value = raw[key]
        if kind == "count":
            options[key] = checks.bounded(value, source, where, integer=True, ge=0)
        elif kind == "population":
            options[key] = checks.bounded(value, source, where, integer=True, ge=2)
        elif kind == "bool":
            options[key] = checks.boolean(value, source, where)
        elif kind == "qmc_type":
            options[key] = checks.one_of(value, ("sobol", "halton"), source, where)
    if name in SINGLE_OBJECTIVE_ONLY and objectives > 1:
        raise ConfigError(source, "sampler.name", f"{name} handles one objective only; use tpe or nsgaii")
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ConfigError(source, "sampler.name", "the cmaes sampler needs the 'cmaes' package (pip install cmaes)")
    if name == "tpe":
        options.setdefault("group", conditional)
        if options["group"]:
            if options.get("multivariate") is False:
                raise ConfigError(source, "sampler.group", "group: true needs multivariate: true")
            options["multivariate"] = True
    return SamplerSpec(name=name, seed=seed, options=options)
