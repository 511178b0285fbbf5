"""Evaluation results over trials: mean and standard deviation, JSON round trip, paper-style text
table and CMC-curve plot.

Values are fractions in the object and in JSON; tables show percentages. The standard deviation is
the population one (ddof=0) over trials, 0 for a single trial.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import get_dataset
from .scores import METRIC_KEYS, Metrics

SCHEMA_VERSION = 1
# Column headers of the papers' tables, in METRIC_KEYS order.
_HEADERS = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}


@dataclass(frozen=True)
class TrialResult:
    trial: int
    metrics: dict[str, float]  # METRIC_KEYS -> fraction
    cmc: list[float]  # rank-1 .. rank-min(20, gallery size)
    num_query: int
    num_gallery: int
    num_valid: int

    @staticmethod
    def from_metrics(trial: int, m: Metrics) -> TrialResult:
        return TrialResult(
            trial=trial,
            metrics=m.as_dict(),
            cmc=[float(v) for v in m.cmc],
            num_query=m.num_queries,
            num_gallery=m.num_gallery,
            num_valid=m.num_valid,
        )


@dataclass(frozen=True)
class EvalResult:
    protocol: str
    dataset: str
    gallery_mode: str
    feature: str
    flip: bool
    cmc_kind: str
    trials: list[TrialResult]
    extra: dict[str, Any] = field(default_factory=dict)  # free-form provenance (checkpoint, split...)

    def __post_init__(self) -> None:
        if not self.trials:
            raise ValueError("an EvalResult needs at least one trial")

    def values(self, key: str) -> np.ndarray:
        if key not in METRIC_KEYS:
            raise KeyError(f"unknown metric {key!r} (choose from {list(METRIC_KEYS)})")
        return np.array([t.metrics[key] for t in self.trials], dtype=np.float64)

    @property
    def mean(self) -> dict[str, float]:
        return {k: float(self.values(k).mean()) for k in METRIC_KEYS}

    @property
    def std(self) -> dict[str, float]:
        return {k: float(self.values(k).std()) for k in METRIC_KEYS}

    def cmc_curves(self) -> np.ndarray:
        """trials x ranks; a shorter curve (smaller gallery) is extended with its last value."""
        n = max(len(t.cmc) for t in self.trials)
        return np.array([t.cmc + [t.cmc[-1]] * (n - len(t.cmc)) for t in self.trials], dtype=np.float64)

    def summary(self, prefix: str = "") -> dict[str, float]:
        """Flat means and standard deviations, e.g. for MLflow: {prefix+"mAP": .., prefix+"mAP_std": ..}."""
        out = {f"{prefix}{k}": v for k, v in self.mean.items()}
        out.update({f"{prefix}{k}_std": v for k, v in self.std.items()})
        return out

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema_version"] = SCHEMA_VERSION
        d["mean"], d["std"] = self.mean, self.std  # for readers of the file; recomputed on load
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> EvalResult:
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported EvalResult schema_version {version!r} (expected {SCHEMA_VERSION})")
        try:
            trials = [TrialResult(**t) for t in d["trials"]]
            return EvalResult(
                protocol=d["protocol"],
                dataset=d["dataset"],
                gallery_mode=d["gallery_mode"],
                feature=d["feature"],
                flip=bool(d["flip"]),
                cmc_kind=d["cmc_kind"],
                trials=trials,
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed EvalResult: {e}") from None

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @staticmethod
    def from_json(text: str) -> EvalResult:
        return EvalResult.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @staticmethod
    def load(path: str | Path) -> EvalResult:
        path = Path(path)
        try:
            return EvalResult.from_json(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # --- presentation --------------------------------------------------------------------------

    def title(self) -> str:
        n = len(self.trials)
        if get_dataset(self.dataset).per_split:  # one trial per split, each with its own model
            runs = f"split{'s' * (n != 1)} {', '.join(str(t.trial) for t in self.trials)}"
        else:
            runs = f"{self.gallery_mode}-shot, {n} trial{'s' * (n != 1)}"
        tta = ", flip TTA" if self.flip else ""
        return f"{self.protocol} ({runs}, feature {self.feature}{tta}, CMC {self.cmc_kind})"

    def table(self, name: str = "model") -> str:
        return format_table([(name, self)])

    def plot_cmc(self, path: str | Path, label: str | None = None) -> Path:
        return plot_cmc([(label or self.protocol, self)], path)


def format_table(rows: list[tuple[str, EvalResult]], std: bool = True, label_header: str = "Method") -> str:
    """Text table like the papers': R1 R5 R10 R20 mAP mINP in %, ``mean ± std`` over trials."""
    if not rows:
        raise ValueError("nothing to tabulate")

    def cell(r: EvalResult, k: str) -> str:
        m = 100 * r.mean[k]
        return f"{m:.2f} ± {100 * r.std[k]:.2f}" if std and len(r.trials) > 1 else f"{m:.2f}"

    header = [label_header, *(_HEADERS[k] for k in METRIC_KEYS)]
    body = [[name, *(cell(r, k) for k in METRIC_KEYS)] for name, r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = lambda line: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))
    )
    titles = dict.fromkeys(r.title() for _, r in rows)  # keep order, drop repeats
    lines = [*titles, "values in %" + (", mean ± std over trials" if std else ""), fmt(header)]
    lines.append("-" * len(lines[-1]))
    lines += [fmt(b) for b in body]
    return "\n".join(lines)


def format_paper_table(rows: list[tuple[str, list[EvalResult]]]) -> str:
    """The papers' layout: one row per model, one column group per setting (e.g. All Search |
    Indoor Search), R1 R5 R10 R20 mAP mINP as mean percentages over trials."""
    from ..datasets import get_protocol

    if not rows:
        raise ValueError("nothing to tabulate")
    settings = [r.protocol for r in rows[0][1]]
    for name, results in rows:
        if [r.protocol for r in results] != settings:
            raise ValueError(f"row {name!r} has settings {[r.protocol for r in results]}, expected {settings}")
    metric_w = 6
    group_w = len(METRIC_KEYS) * (metric_w + 1) - 1
    name_w = max(len("Method"), *(len(n) for n, _ in rows))
    sep = " | "
    titles = [get_protocol(p).title for p in settings]
    head1 = " " * name_w + sep + sep.join(t.center(group_w) for t in titles)
    head2 = (
        "Method".ljust(name_w)
        + sep
        + sep.join(" ".join(_HEADERS[k].rjust(metric_w) for k in METRIC_KEYS) for _ in settings)
    )
    lines = [head1.rstrip(), head2, "-" * len(head2)]
    for name, results in rows:
        cells = [" ".join(f"{100 * r.mean[k]:{metric_w}.2f}" for k in METRIC_KEYS) for r in results]
        lines.append(name.ljust(name_w) + sep + sep.join(cells))
    return "\n".join(lines)


def plot_cmc(curves: list[tuple[str, EvalResult]], path: str | Path) -> Path:
    """PNG of the mean CMC curve (band: ± one std over trials), ranks 1..min(20, gallery size)."""
    # A bare Figure renders through the Agg canvas without pyplot's global state or a display.
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("nothing to plot")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5, 3.5), dpi=120)
    ax = fig.subplots()
    for label, r in curves:
        c = 100 * r.cmc_curves()
        ranks = np.arange(1, c.shape[1] + 1)
        mean, sd = c.mean(0), c.std(0)
        ax.plot(ranks, mean, marker="o", markersize=3, label=label)
        if len(r.trials) > 1:
            ax.fill_between(ranks, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(f"CMC ({curves[0][1].cmc_kind})")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
