"""The report of an evaluation run (one or more checkpoints on one dataset): the papers' table for the
terminal, JSON for tools, a CMC plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets import get_protocol
from .full import check_combinable, combine_regdb_splits
from .rerank import RERANK_PREFIX
from .result import EvalResult, format_paper_table, format_table, plot_cmc


def result_label(name: str) -> str:
    """A protocol's label; re-ranked results say so."""
    if name.startswith(RERANK_PREFIX):
        return f"{get_protocol(name[len(RERANK_PREFIX) :]).label}, re-ranked (k-reciprocal)"
    return get_protocol(name).label


REPORT_FORMAT = "mscm.eval.report"
REPORT_VERSION = 1


@dataclass
class Report:
    """Results of one evaluation run (one or more checkpoints on one dataset), for the terminal and JSON."""

    results: dict[str, EvalResult]
    checkpoints: list[str]
    dataset: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    name: str = "model"  # the row name in tables (the run name)

    def table(self) -> str:
        """The papers' layout (means), then every setting with mean ± std over its trials."""
        paper = format_paper_table([(self.name, list(self.results.values()))])
        detail = format_table([(result_label(name), r) for name, r in self.results.items()], label_header="Setting")
        return f"{paper}\n\n{detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "name": self.name,
            "checkpoints": self.checkpoints,
            "dataset": self.dataset,
            "settings": self.settings,
            "results": {name: r.to_dict() for name, r in self.results.items()},
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Report:
        if d.get("format") != REPORT_FORMAT or d.get("version") != REPORT_VERSION:
            raise ValueError(
                f"not an {REPORT_FORMAT} v{REPORT_VERSION} report "
                f"(format {d.get('format')!r}, version {d.get('version')!r})"
            )
        return Report(
            results={k: EvalResult.from_dict(v) for k, v in d["results"].items()},
            checkpoints=list(d["checkpoints"]),
            dataset=dict(d["dataset"]),
            settings=dict(d.get("settings", {})),
            name=str(d.get("name", "model")),
        )

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def plot_cmc(self, path: str | Path) -> Path:
        return plot_cmc([(result_label(name), r) for name, r in self.results.items()], path)


def merge_reports(reports: Sequence[Report]) -> Report:
    """Several RegDB checkpoints (one per split) as one report over the splits."""
    if len(reports) == 1:
        return reports[0]
    check_combinable([r.dataset["layout"] for r in reports], [r.dataset.get("regdb_split") for r in reports])
    results = combine_regdb_splits([r.results for r in reports])
    dataset = dict(reports[0].dataset)
    dataset["regdb_split"] = sorted(r.dataset["regdb_split"] for r in reports)
    return Report(results, [c for r in reports for c in r.checkpoints], dataset, reports[0].settings, reports[0].name)
