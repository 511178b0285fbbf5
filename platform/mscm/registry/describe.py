"""What a registered model version says about itself: tags a program can filter on and a Markdown
description a reviewer can read (dataset and protocol, the full metric table, the decision, the
search and trial it came from, the code version, the evaluation data's fingerprint, the config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import RunConfig, dump_yaml, flatten, to_dict
from ..eval import METRIC_KEYS, EvalResult, get_protocol
from ..tracking.contract import DATASET_TAG, SEARCH_TAG
from ..tracking.model_logging import INPUT_DOC, OUTPUT_DOC

if TYPE_CHECKING:
    from ..tracking.trials import TrialChoice

# Version tags (the registry's contract: promotion reads them back from the champion).
TAG_SEARCH = SEARCH_TAG  # the search a version came from, as on its runs
TAG_TRIAL = "mscm.trial_id"
TAG_SOURCE_RUN = "mscm.source_run_id"
TAG_PROMOTION_RUN = "mscm.promotion_run_id"
TAG_CHECKPOINT_SHA = (
    "mscm.checkpoint_sha256"  # weights digest (mscm.checkpoint.weights_sha256): promoting them twice is a no-op
)
TAG_CHECKPOINT_URI = "mscm.checkpoint_uri"
TAG_MODEL_SHA = "mscm.model_sha256"  # of the registered model's files, to detect a damaged champion
TAG_DATASET = DATASET_TAG
TAG_PROTOCOLS = "mscm.protocols"
TAG_DATA_FINGERPRINT = "mscm.data_fingerprint"
TAG_CODE_VERSION = "mscm.code_version"
TAG_CONFIG = "mscm.config"
TAG_DECISION = "mscm.decision"
TAG_INPUT = "mscm.input"
METRIC_TAG_PREFIX = "mscm.metric."  # mscm.metric.<protocol>.<metric> = mean (and _std)

MAX_DESCRIPTION = 5000  # MLflow's limit on a model version description
_HEADERS = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}


@dataclass(frozen=True)
class VersionRecord:
    """Everything a new version records about where it came from and how it was judged."""

    registered_model: str
    choice: TrialChoice
    cfg: RunConfig
    epoch: int
    checkpoint_sha256: str
    checkpoint_uri: str
    model_sha256: str
    results: dict[str, EvalResult]
    champion_version: str | None
    champion_results: dict[str, EvalResult] | None
    decision: str  # champion | challenger
    reason: str
    data_fingerprint: str
    data_summary: str
    code_version: str
    promotion_run_id: str


def version_tags(rec: VersionRecord) -> dict[str, str]:
    tags = {
        TAG_SEARCH: rec.choice.search.name,
        TAG_TRIAL: rec.choice.trial_id,
        TAG_SOURCE_RUN: rec.choice.run_id,
        TAG_PROMOTION_RUN: rec.promotion_run_id,
        TAG_CHECKPOINT_SHA: rec.checkpoint_sha256,
        TAG_CHECKPOINT_URI: rec.checkpoint_uri,
        TAG_MODEL_SHA: rec.model_sha256,
        TAG_DATASET: rec.cfg.data.dataset,
        TAG_PROTOCOLS: ",".join(rec.results),
        TAG_DATA_FINGERPRINT: rec.data_fingerprint,
        TAG_CODE_VERSION: rec.code_version,
        TAG_CONFIG: dump_yaml(rec.cfg),
        TAG_DECISION: f"{rec.decision}: {rec.reason}",
        TAG_INPUT: f"{INPUT_DOC} to {rec.cfg.data.height}x{rec.cfg.data.width} -> {OUTPUT_DOC}",
    }
    for name, r in rec.results.items():
        for key in METRIC_KEYS:
            tags[f"{METRIC_TAG_PREFIX}{name}.{key}"] = f"{r.mean[key]:.6f}"
            tags[f"{METRIC_TAG_PREFIX}{name}.{key}_std"] = f"{r.std[key]:.6f}"
    return tags


def _cell(r: EvalResult, key: str) -> str:
    mean = 100 * r.mean[key]
    return f"{mean:.2f} ± {100 * r.std[key]:.2f}" if len(r.trials) > 1 else f"{mean:.2f}"


def metric_table(rows: list[tuple[str, dict[str, EvalResult]]]) -> str:
    """Markdown table, one line per (protocol, model): R1 R5 R10 R20 mAP mINP in %, mean ± std."""
    lines = [
        "| protocol | model | " + " | ".join(_HEADERS[k] for k in METRIC_KEYS) + " |",
        "|---|---|" + "---|" * len(METRIC_KEYS),
    ]
    protocols = list(dict.fromkeys(p for _, results in rows for p in results))
    for protocol in protocols:
        for who, results in rows:
            r = results.get(protocol)
            if r is None:
                continue
            shots = f", {r.gallery_mode}-shot" if get_protocol(protocol).drawn_gallery else ""
            where = f"{get_protocol(protocol).label}{shots}, {len(r.trials)} trial{'s' * (len(r.trials) != 1)}"
            lines.append(f"| {where} | {who} | " + " | ".join(_cell(r, k) for k in METRIC_KEYS) + " |")
    return "\n".join(lines)


def config_differences(cfg: RunConfig) -> list[str]:
    """``key=value`` for every setting that differs from the schema defaults (the paper recipe)."""
    mine, base = flatten(to_dict(cfg)), flatten(to_dict(RunConfig()))
    return [f"{k}={mine[k]}" for k in mine if mine[k] != base.get(k)]


def version_description(rec: VersionRecord) -> str:
    cfg, choice = rec.cfg, rec.choice
    m = cfg.model
    rows = [("this version", rec.results)]
    if rec.champion_results is not None:
        rows.append((f"champion v{rec.champion_version}", rec.champion_results))
    head = [
        f"**MSCMNet** ({m.backbone}, {m.streams} streams, MIMB scales {m.mimb_scales}) for **{cfg.data.dataset}**, "
        f"input {cfg.data.height}x{cfg.data.width}, test feature `{cfg.eval.feature}`"
        f"{ {None: ', flip TTA as the authors per protocol', True: ' + flip'}.get(cfg.eval.flip, '') }.",
        "",
        f"**Decision: {rec.decision}.** {rec.reason}",
        "",
        metric_table(rows),
        "",
        "Values in %, mean ± std over trials.",
        "",
        f"- Source: search `{choice.search.name}`, trial `{choice.trial_id}` (run `{choice.run_id}`), "
        f"best checkpoint of epoch {rec.epoch} (ranked by {choice.ranked_by} = {choice.score:.4f}); "
        f"weights SHA-256 `{rec.checkpoint_sha256[:16]}`, stored at `{rec.checkpoint_uri}`.",
        f"- Evaluation data: {rec.data_summary}; fingerprint `{rec.data_fingerprint}`.",
        f"- Code: {rec.code_version}. Promotion run `{rec.promotion_run_id}`.",
        f"- Input: {INPUT_DOC} to {cfg.data.height}x{cfg.data.width}; output: {OUTPUT_DOC}.",
    ]
    tail = f"- Full resolved config: tag `{TAG_CONFIG}` and artifact `config/run.yaml` of the promotion run."
    text = "\n".join(head)
    diffs = config_differences(cfg)
    budget = MAX_DESCRIPTION - len(text) - len(tail) - 80
    shown, used = [], 0
    for d in diffs:
        item = f"`{d}`"
        if used + len(item) + 2 > budget:
            break
        shown.append(item)
        used += len(item) + 2
    more = f" … and {len(diffs) - len(shown)} more" if len(shown) < len(diffs) else ""
    text += "\n- Config (differences from the paper recipe): " + (", ".join(shown) or "none") + more + "\n" + tail
    return text[:MAX_DESCRIPTION]
