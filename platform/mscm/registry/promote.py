"""Promotion: the best trial of a search against the registered model's current champion.

1. The candidate is the search's best trial by the metric of its best checkpoint
   (:func:`mscm.tracking.trials.select_trial`), or, when the search has confirmation runs, the
   representative seed of the configuration with the best confirmed mean
   (:mod:`mscm.tracking.confirmation`); rebuilt from its logged model (:mod:`.select`).
2. If a version of the registered model already holds these weights (tag ``mscm.checkpoint_sha256``),
   nothing happens: running a promotion twice registers nothing twice.
3. The champion (alias ``champion``) is checked before anything is written: its checkpoint and its
   model files must be where its tags say, with the recorded SHA-256. A damaged or missing champion
   stops the promotion with a :class:`PromotionError`; the registry is left as it was.
4. Both are evaluated on the full test protocol of the candidate's dataset (:mod:`.evaluation`),
   same data, same trials. The candidate becomes champion only when it beats the champion by more
   than ``margin`` on ``metric`` (both confirmed: on their confirmed means, and by a one-sided Welch
   test at ``level``, :mod:`.gate`); otherwise it is registered with the alias ``challenger``.
5. Unless ``dry_run``: a promotion run (nested under the search's run) keeps the checkpoint, the
   evaluation and the decision; the inference model is logged from the checkpoint (mscm + pyfunc flavours) and
   registered with tags and a description (:mod:`.describe`); the alias moves last.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..checkpoint import CheckpointError, checkpoint_files, load_model, state_dict_sha256
from ..config import RunConfig
from ..errors import RegistryError
from ..eval import EvalResult, format_table
from ..tracking.contract import KIND_PROMOTION, KIND_TAG, SEARCH_TAG, SPLIT_TAG
from ..tracking.trials import TrialChoice, find_search, select_trial
from .describe import (
    TAG_CHECKPOINT_SHA,
    TAG_CHECKPOINT_URI,
    TAG_DATASET,
    TAG_MODEL_SHA,
    TAG_SOURCE_RUN,
    TAG_TRIAL,
    VersionRecord,
    version_description,
    version_tags,
)
from .evaluation import EvalData, decision_label, decision_value, evaluate_full_protocol, load_eval_data
from .gate import Confirmed, welch_gate
from .select import checkpoint_dir
from .settings import ALIAS_CHALLENGER, ALIAS_CHAMPION, PromotionSettings
from .source import (
    ModelSourceError,
    check_sha,
    download,
    registry_client,
    tree_sha256,
    version_checkpoint,
)

Action = Literal["champion", "challenger", "noop"]


class PromotionError(RegistryError):
    """Promotion cannot go on (a damaged champion, an unreadable candidate); nothing was changed."""


@dataclass(frozen=True)
class Champion:
    version: str
    model: Any  # the MSCMNet rebuilt from the champion's checkpoint
    cfg: RunConfig
    confirmed: Confirmed | None = None  # its confirmed figures, when it was registered from a confirmation


@dataclass
class PromotionOutcome:
    action: Action
    reason: str
    registered_model: str
    candidate: TrialChoice
    dry_run: bool = False
    version: str | None = None  # the version registered (or already holding the weights)
    champion_version: str | None = None  # the champion the candidate was compared with
    candidate_value: float | None = None  # the deciding number (decision_value) of each side
    champion_value: float | None = None
    candidate_results: dict[str, EvalResult] | None = None
    champion_results: dict[str, EvalResult] | None = None
    promotion_run_id: str | None = None
    confirmed: Confirmed | None = None  # the candidate configuration's seeds (mscm confirm), if any
    gate: dict | None = None  # how the decision was taken (rule, means, stds, the test)

    def message(self) -> str:
        c = self.candidate
        lines = [
            f"candidate: search {c.search.name!r}, trial {c.trial_id} (run {c.run_id}), {c.ranked_by} {c.score:.4f}"
        ]
        if self.candidate_results:
            rows = [(f"trial {c.trial_id}", self.candidate_results)]
            if self.champion_results:
                rows.append((f"champion v{self.champion_version}", self.champion_results))
            for protocol in self.candidate_results:
                lines.append(format_table([(who, res[protocol]) for who, res in rows]))
        if self.action == "noop":
            lines.append(f"nothing to do: {self.reason}")
        elif self.dry_run:
            lines.append(f"dry run: would register it in {self.registered_model!r} as {self.action}: {self.reason}")
            lines.append("nothing was changed")
        else:
            lines.append(
                f"registered version {self.version} of {self.registered_model!r} as {self.action}: {self.reason}"
            )
        return "\n".join(lines)


def promote(
    search: str,
    settings: PromotionSettings | None = None,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    trial_id: str | None = None,
    dataset_root: str | None = None,
    dry_run: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> PromotionOutcome:
    """Promote the best trial of ``search`` (or ``trial_id``); see the module docstring."""
    settings = settings or PromotionSettings()
    client = registry_client(tracking_uri)
    choice, confirmed = _candidate(client, find_search(client, search, experiment), settings, trial_id)
    with tempfile.TemporaryDirectory(prefix="mscm-promote-") as scratch:
        ckpt = checkpoint_dir(client, choice, Path(scratch, "candidate"))
        try:
            model, cfg, payload = load_model(ckpt, device)
        except CheckpointError as e:
            raise PromotionError(f"trial {choice.trial_id}: its best checkpoint cannot be loaded: {e}") from None
        sha = state_dict_sha256(payload["state_dict"])  # from the load above: the file is read once
        name = settings.model_name(cfg.data.dataset)
        outcome = PromotionOutcome("noop", "", name, choice, dry_run=dry_run, confirmed=confirmed)

        existing = _version_with_checkpoint(client, name, sha)
        if existing is not None:
            aliases = ", ".join(existing.aliases) or "no alias"
            outcome.version = str(existing.version)
            outcome.reason = (
                f"trial {choice.trial_id}'s best checkpoint (SHA-256 {sha[:12]}) is already version "
                f"{existing.version} of {name!r} ({aliases})"
            )
            return outcome

        champion = load_champion(client, name, cfg.data.dataset, Path(scratch, "champion"), device)
        data = load_eval_data(cfg.data, dataset_root)
        _judge(outcome, model, cfg, champion, data, settings, device, progress)
        if dry_run:
            return outcome
        _register(client, outcome, ckpt, sha, cfg, payload, data)
    return outcome


def _candidate(client, search, settings: PromotionSettings, trial_id: str | None):
    """With confirmation runs: the configuration with the best confirmed mean, registered through its
    representative seed (the run nearest that mean, mscm.tracking.confirmation). Otherwise (or for an
    explicit ``trial_id``) the search's best trial, unconfirmed."""
    from ..tracking.confirmation import confirmed_configs

    confirmed = [] if trial_id else confirmed_configs(client, search, settings.metric)
    confirmed = [c for c in confirmed if settings.metric in c.metrics]
    if not confirmed:
        return select_trial(client, search, settings.metric, trial_id), None
    best = confirmed[0]
    choice = best.representative(settings.metric)
    split = client.get_run(choice.run_id).data.tags.get(SPLIT_TAG, "test")
    return choice, Confirmed(settings.metric, split, best.metrics[settings.metric].values)


def _judge(outcome, model, cfg, champion, data, settings: PromotionSettings, device, progress) -> None:
    """Evaluate both on the full test protocol, then decide: the Welch gate when both are confirmed on the
    same metric and split, else the single-evaluation gate (said to be unconfirmed)."""
    name = outcome.registered_model
    outcome.candidate_results = evaluate_full_protocol(model, cfg, data, settings, device=device, progress=progress)
    cand = outcome.candidate_value = decision_value(outcome.candidate_results, settings)
    label = decision_label(outcome.candidate_results, settings)
    if champion is None:
        outcome.action = "champion"
        outcome.reason = f"{name!r} has no champion yet; {label} = {100 * cand:.2f}%"
        outcome.gate = {"rule": "first", "confirmed": outcome.confirmed is not None}
        return
    outcome.champion_version = champion.version
    outcome.champion_results = evaluate_full_protocol(
        champion.model, champion.cfg, data, settings, device=device, progress=progress
    )
    held = outcome.champion_value = decision_value(outcome.champion_results, settings)
    versus = f"{label}: {100 * cand:.2f}% vs {100 * held:.2f}% for champion v{champion.version}"
    if outcome.confirmed is not None and outcome.confirmed.comparable(champion.confirmed):
        test = welch_gate(outcome.confirmed, champion.confirmed, settings.margin, settings.level)
        outcome.action = "champion" if test.promote else "challenger"
        verdict = "better beyond noise and margin" if test.promote else "not better beyond noise and margin"
        outcome.reason = f"{verdict}: {test.text(settings.metric)}; test protocol {versus}"
        outcome.gate = test.to_dict()
        return
    outcome.action, outcome.reason = decide(cand, held, settings.margin)
    why = "no confirmation runs" if outcome.confirmed is None else "the champion has no comparable confirmation"
    outcome.reason = (
        f"unconfirmed ({why}): {outcome.reason}; {versus} "
        f"({100 * (cand - held):+.2f} points, margin {100 * settings.margin:.2f})"
    )
    outcome.gate = {"rule": "single", "candidate": cand, "champion": held, "margin": settings.margin}


def decide(candidate: float, champion: float, margin: float) -> tuple[Action, str]:
    """Champion only when strictly better than the champion by more than ``margin`` (same units)."""
    if candidate > champion + margin:
        return "champion", "better than the champion by more than the margin"
    return "challenger", "not better than the champion by more than the margin"


# -- reading the registry ---------------------------------------------------------------------------


def _version_with_checkpoint(client, name: str, sha: str):
    found = client.search_model_versions(f"name = '{name}' and tags.`{TAG_CHECKPOINT_SHA}` = '{sha}'")
    if not found:
        return None
    # search results may omit aliases; read the version itself
    return client.get_model_version(name, found[0].version)


def _not_found(e: Exception) -> bool:
    return getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def load_champion(client, name: str, dataset: str, scratch: Path, device: str = "cpu") -> Champion | None:
    """The current champion rebuilt from its recorded checkpoint, after checking that its checkpoint
    and model files are intact; ``None`` when the registered model has no version yet."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as e:
        if _not_found(e):
            return None
        raise
    if ALIAS_CHAMPION not in registered.aliases:
        versions = client.search_model_versions(f"name = '{name}'")
        if not versions:
            return None
        raise PromotionError(
            f"registered model {name!r} has {len(versions)} version(s) but no {ALIAS_CHAMPION!r} alias, so there is "
            f"nothing to compare with. Point the alias at the version in use, e.g. "
            f"MlflowClient().set_registered_model_alias({name!r}, {ALIAS_CHAMPION!r}, VERSION), and promote again. "
            "Nothing was changed."
        )
    mv = client.get_model_version(name, registered.aliases[ALIAS_CHAMPION])
    where = f"champion of {name!r} (version {mv.version})"
    missing = [t for t in (TAG_CHECKPOINT_URI, TAG_CHECKPOINT_SHA, TAG_MODEL_SHA, TAG_DATASET) if t not in mv.tags]
    if missing:
        raise PromotionError(
            f"{where} was not registered by mscm promote (tags {', '.join(missing)} missing), so it "
            "cannot be re-evaluated on the candidate's data. Nothing was changed."
        )
    if mv.tags[TAG_DATASET] != dataset:
        raise PromotionError(
            f"{where} is a {mv.tags[TAG_DATASET]} model; the candidate is a {dataset} model. "
            "Use another registered model name (--registered-model). Nothing was changed."
        )
    try:
        ckpt = version_checkpoint(client, mv, scratch / "checkpoint")
        model_dir = download(mv.source, scratch / "model", client.tracking_uri, f"{where}: its model files")
        check_sha(tree_sha256(model_dir), mv.tags[TAG_MODEL_SHA], f"{where}: model files at {mv.source}")
        model, cfg, _ = load_model(ckpt, device)
    except (ModelSourceError, CheckpointError) as e:
        raise PromotionError(f"cannot use the {ALIAS_CHAMPION}: {e}. Nothing was changed.") from None
    return Champion(str(mv.version), model, cfg, Confirmed.from_tags(mv.tags))


# -- writing ------------------------------------------------------------------------------------------


def _register(
    client, outcome: PromotionOutcome, ckpt: Path, sha: str, cfg: RunConfig, payload: dict, data: EvalData
) -> None:
    """A promotion run under the search (checkpoint, config, evaluations, the model, the decision), then
    the model version from the model it logged, with its alias."""
    run = _promotion_run(client, outcome.candidate, sha)
    status = "FAILED"
    try:
        with tempfile.TemporaryDirectory(prefix="mscm-register-") as tmp:
            model_uri, record, description = _log_promotion(
                run, client, outcome, ckpt, sha, cfg, payload, data, Path(tmp)
            )
        _ensure_registered_model(client, outcome.registered_model)
        mv = client.create_model_version(
            outcome.registered_model,
            source=model_uri,
            run_id=run.run_id,
            tags={**version_tags(record), **(outcome.confirmed.tags() if outcome.confirmed else {})},
            description=description,
            model_id=model_uri.split("/", 1)[1] if model_uri.startswith("models:/") else None,
        )
        outcome.version = str(mv.version)
        outcome.promotion_run_id = run.run_id
        alias = ALIAS_CHAMPION if outcome.action == "champion" else ALIAS_CHALLENGER
        client.set_registered_model_alias(outcome.registered_model, alias, mv.version)
        run.set_tags(
            {"mscm.registered_model": outcome.registered_model, "mscm.version": mv.version, "mscm.alias": alias}
        )
        status = "FINISHED"
    finally:
        run.end(status)


def _promotion_run(client, choice, sha: str):
    from ..tracking.mlflow_run import RunLogger

    search = choice.search
    return RunLogger(
        client.tracking_uri,
        client.get_experiment(search.experiment_id).name,
        run_name=f"promote-{choice.trial_id}",
        parent_run_id=search.run_id,
        tags={
            KIND_TAG: KIND_PROMOTION,
            SEARCH_TAG: search.name,
            TAG_TRIAL: choice.trial_id,
            TAG_SOURCE_RUN: choice.run_id,
            TAG_CHECKPOINT_SHA: sha,
            SPLIT_TAG: "test",  # promotion evaluates the full test protocol
        },
    )


def _log_promotion(run, client, outcome, ckpt, sha, cfg, payload, data, tmp: Path):
    """The promotion run's files and metrics; returns the logged model's URI, the version record and its
    description."""
    from ..config import dump_yaml
    from ..tracking.model_logging import log_embedding_model
    from .provenance import code_version

    for f in checkpoint_files(ckpt):
        run.log_artifact(f, "checkpoint")
    run.client.log_text(run.run_id, dump_yaml(cfg), "config/run.yaml")
    for who, results in (("candidate", outcome.candidate_results), ("champion", outcome.champion_results)):
        for protocol, r in (results or {}).items():
            r.save(tmp / who / f"{protocol}.json")
            run.log_metrics(r.summary(prefix=f"{who}/{protocol}/"), step=0)
        if results:
            run.log_artifacts(tmp / who, f"evaluation/{who}")
    model_uri = log_embedding_model(client.tracking_uri, run.run_id, ckpt)
    model_sha = tree_sha256(download(model_uri, tmp / "model", client.tracking_uri, "the model just logged"))
    record = VersionRecord(
        registered_model=outcome.registered_model,
        choice=outcome.candidate,
        cfg=cfg,
        epoch=int(payload.get("epoch", 0)),
        checkpoint_sha256=sha,
        checkpoint_uri=f"runs:/{run.run_id}/checkpoint",
        model_sha256=model_sha,
        results=outcome.candidate_results or {},
        champion_version=outcome.champion_version,
        champion_results=outcome.champion_results,
        decision=outcome.action,
        reason=outcome.reason,
        data_fingerprint=data.fingerprint,
        data_summary=data.dataset.summary(),
        code_version=code_version(),
        promotion_run_id=run.run_id,
    )
    description = version_description(record)
    run.client.log_text(run.run_id, description, "promotion.md")
    run.client.log_text(run.run_id, json.dumps(_decision(outcome, sha), indent=2), "decision.json")
    return model_uri, record, description


def _decision(outcome: PromotionOutcome, sha: str) -> dict:
    c = outcome.confirmed
    return {
        "action": outcome.action,
        "reason": outcome.reason,
        "gate": outcome.gate,
        "confirmed": None
        if c is None
        else {"metric": c.metric, "split": c.split, "values": list(c.values), "mean": c.mean, "std": c.std},
        "candidate_value": outcome.candidate_value,
        "champion_value": outcome.champion_value,
        "registered_model": outcome.registered_model,
        "champion_version": outcome.champion_version,
        "trial_id": outcome.candidate.trial_id,
        "source_run_id": outcome.candidate.run_id,
        "checkpoint_sha256": sha,
    }


def _ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as e:
        if not _not_found(e):
            raise
        client.create_registered_model(
            name,
            description=(
                f"MSCMNet VI-ReID embedding models promoted by `mscm promote`. Load the current one with "
                f"`mlflow.pyfunc.load_model('models:/{name}@{ALIAS_CHAMPION}')`; see docs/promotion.md."
            ),
        )
