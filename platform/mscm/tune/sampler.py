"""The ``sampler:`` section of a search space: which Optuna sampler proposes the trials.

Ray's OptunaSearch takes a sampler *instance* (docs/stack.md 2.3), so the spec is kept as plain data
(picklable, comparable) and :meth:`SamplerSpec.make` builds a fresh sampler on demand.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from ..config import ConfigError, from_dict
from ..config.loader import spec

DEFAULT_SEED = 0


# The section's options per sampler, declared like the run config's sections (null: Optuna's default).
@dataclass(frozen=True)
class TPEOptions:
    n_startup_trials: int | None = spec(None, ge=0)
    multivariate: bool | None = None
    group: bool | None = None
    constant_liar: bool | None = None


@dataclass(frozen=True)
class NoOptions:
    pass


@dataclass(frozen=True)
class StartupOptions:
    n_startup_trials: int | None = spec(None, ge=0)


@dataclass(frozen=True)
class QMCOptions:
    qmc_type: Literal["sobol", "halton"] | None = None
    scramble: bool | None = None


@dataclass(frozen=True)
class NSGAIIOptions:
    population_size: int | None = spec(None, ge=2)


SAMPLER_OPTIONS: dict[str, type] = {
    "tpe": TPEOptions,
    "random": NoOptions,
    "cmaes": StartupOptions,
    "qmc": QMCOptions,
    "gp": StartupOptions,
    "nsgaii": NSGAIIOptions,
}
SamplerName = Literal["tpe", "random", "cmaes", "qmc", "gp", "nsgaii"]
SINGLE_OBJECTIVE_ONLY = ("cmaes",)


@dataclass(frozen=True)
class SamplerHead:
    """The keys every sampler takes; the rest of the section are the chosen sampler's options."""

    name: SamplerName = "tpe"
    seed: int | None = spec(DEFAULT_SEED, ge=0, doc="null: a different draw every search")


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


def parse_sampler(raw: dict[str, Any] | None, source: str, *, conditional: bool, objectives: int) -> SamplerSpec:
    """Validate the ``sampler:`` mapping. ``conditional``: the space has conditional parameters, for
    which TPE defaults to ``group: true`` (multivariate TPE over each set of co-occurring parameters)."""
    raw = raw or {}
    head = from_dict(
        SamplerHead, {k: v for k, v in raw.items() if k in ("name", "seed")}, source=source, prefix="sampler"
    )
    rest = {k: v for k, v in raw.items() if k not in ("name", "seed")}
    section = SAMPLER_OPTIONS[head.name]
    known = {f.name for f in fields(section)}
    for key in rest:
        if key not in known and any(key in {f.name for f in fields(c)} for c in SAMPLER_OPTIONS.values()):
            raise ConfigError(
                source,
                f"sampler.{key}",
                f"not an option of the {head.name} sampler (its options: {sorted(known) or 'none'})",
            )
    chosen = from_dict(section, rest, source=source, prefix="sampler")
    options = {k: v for k, v in asdict(chosen).items() if v is not None}
    if head.name in SINGLE_OBJECTIVE_ONLY and objectives > 1:
        raise ConfigError(source, "sampler.name", f"{head.name} handles one objective only; use tpe or nsgaii")
    if head.name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ConfigError(source, "sampler.name", "the cmaes sampler needs the 'cmaes' package (pip install cmaes)")
    if head.name == "tpe":
        options.setdefault("group", conditional)
        if options["group"]:
            if options.get("multivariate") is False:
                raise ConfigError(source, "sampler.group", "group: true needs multivariate: true")
            options["multivariate"] = True
    return SamplerSpec(name=head.name, seed=head.seed, options=options)
