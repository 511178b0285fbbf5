"""``mscm import-authors``: a checkpoint saved by the MSCMNet authors' ``train.py`` as an mscm checkpoint,
optionally registered in MLflow with its provenance (and as the champion of its dataset).

The file is read with ``torch.load(weights_only=True)``; besides tensors it holds the authors' metrics as
numpy arrays and scalars, so numpy's array and scalar constructors (data, not code) are allowed, nothing
else. Every key is converted (:mod:`mscm.model.authors_weights`) and the result is loaded strictly into the
network of the chosen recipe before anything is written: a key or shape that does not fit names itself.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import CheckpointError, checkpoint_files, load_state_strict, save_checkpoint, state_dict_sha256
from ..errors import RegistryError
from .describe import TAG_CHECKPOINT_SHA, TAG_CHECKPOINT_URI, TAG_CONFIG, TAG_DATASET, TAG_MODEL_SHA
from .settings import ALIAS_CHAMPION
from .source import file_sha256

ORIGIN = "MSCMNet authors' release (github.com/Hua-XC/MSCMNet, train.py checkpoint)"
TAG_ORIGIN, TAG_SOURCE_FILE, TAG_SOURCE_SHA = "mscm.origin", "mscm.source_file", "mscm.source_sha256"
IMPORT_EXPERIMENT = "mscm-imports"


class AuthorsImportError(RegistryError):
    """The file is not a usable checkpoint of the authors' network."""


@dataclass
class ImportReport:
    source: Path
    out: Path
    dataset: str
    num_classes: int
    epoch: int
    authors_metrics: dict[str, float]
    dropped: list[str] = field(default_factory=list)
    checkpoint_sha256: str = ""
    config_yaml: str = ""
    version: str | None = None
    alias: str | None = None

    def message(self) -> str:
        from ..model.authors_weights import dropped_summary

        lines = [
            f"wrote {self.out}: {self.dataset} model, {self.num_classes} classes, epoch {self.epoch}, "
            f"weights SHA-256 {self.checkpoint_sha256[:12]}",
            f"dropped {len(self.dropped)} keys the authors' network never uses:",
            *(f"  {line}" for line in dropped_summary(self.dropped)),
        ]
        if self.authors_metrics:
            lines.append("authors' own figures: " + ", ".join(f"{k} {v:.4f}" for k, v in self.authors_metrics.items()))
        if self.version:
            lines.append(f"registered as version {self.version}" + (f" ({self.alias})" if self.alias else ""))
        return "\n".join(lines)


def _numpy_globals() -> list[Any]:
    """What a pickled numpy array or scalar names: constructors of data, allowed in a weights-only load."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32")]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def read_authors_file(path: Path) -> dict[str, Any]:
    from ..torchfile import load_tensors

    if not path.is_file():
        raise AuthorsImportError(f"{path}: no such file")
    with torch.serialization.safe_globals(_numpy_globals()):
        try:
            payload = load_tensors(path)
        except ValueError as e:
            raise AuthorsImportError(f"{path}: {e}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("net"), dict):
        raise AuthorsImportError(f"{path}: not a checkpoint of the authors' train.py (no 'net' state dict)")
    return payload


def _metrics(payload: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key in ("mAP", "mINP"):
        if key in payload:
            out[key] = float(np.asarray(payload[key]).reshape(-1)[0])
    if "cmc" in payload:
        cmc = np.asarray(payload["cmc"]).reshape(-1)
        out.update({f"R{k}": float(cmc[k - 1]) for k in (1, 5, 10, 20) if len(cmc) >= k})
    return out


def import_authors(source: str | Path, out: str | Path, *, recipe: str = "sysu") -> ImportReport:
    """Convert ``source`` into an mscm checkpoint folder ``out`` (which must not hold one yet)."""
    from ..config import dump_yaml, load_run_config
    from ..model import build_model
    from ..model.authors_weights import AuthorsKeyError, convert

    source, out = Path(source), Path(out)
    if (out / "model.pt").exists():
        raise AuthorsImportError(f"{out} already holds a checkpoint; choose another --out")
    payload = read_authors_file(source)
    try:
        converted = convert(payload["net"])
    except AuthorsKeyError as e:
        msg = f"{source}: key {e.args[0]!r} is no part of the authors' network; nothing written"
        raise AuthorsImportError(msg) from None
    classifier = converted.state_dict.get("classifier.weight")
    if classifier is None:
        raise AuthorsImportError(f"{source}: no classifier.weight, so the class count is unknown; nothing written")
    cfg = load_run_config(recipe, {"model.pretrained": None})
    model = build_model(cfg.model, int(classifier.shape[0]), cfg.data.height, cfg.data.width)
    own = model.state_dict()
    for key, tensor in converted.state_dict.items():  # named as the authors name it, before the strict load
        if key in own and tuple(own[key].shape) != tuple(tensor.shape):
            raise AuthorsImportError(
                f"{source}: {converted.origin[key]} has shape {tuple(tensor.shape)}, the {recipe} network's "
                f"{key} has {tuple(own[key].shape)}; nothing written"
            )
    try:
        load_state_strict(model, converted.state_dict, str(source))
    except CheckpointError as e:
        raise AuthorsImportError(f"{e}; nothing was written") from None
    epoch = int(payload.get("epoch", 0))
    metrics = _metrics(payload)
    save_checkpoint(
        out, cfg=cfg, num_classes=int(classifier.shape[0]), model=model, epoch=epoch,
        metrics={f"authors/{k}": v for k, v in metrics.items()},
    )  # fmt: skip
    report = ImportReport(source, out, cfg.data.dataset, int(classifier.shape[0]), epoch, metrics, converted.dropped)
    report.checkpoint_sha256 = state_dict_sha256(model.state_dict())
    report.config_yaml = dump_yaml(cfg)
    return report


def register_import(
    report: ImportReport,
    name: str,
    *,
    champion: bool,
    tracking_uri: str | None = None,
    artifact_location: str | None = None,
) -> None:
    """Log the converted checkpoint and its model in a run of ``mscm-imports`` and register a version of
    ``name`` with the tags promotion reads (so promotion can re-evaluate it as a champion) and its provenance."""
    from ..tracking.contract import KIND_IMPORT, KIND_TAG
    from ..tracking.mlflow_run import get_or_create_experiment, resolve_tracking_uri
    from ..tracking.model_logging import log_embedding_model
    from ..tracking.store_open import open_client
    from .promote import _ensure_registered_model
    from .source import download, tree_sha256

    uri = resolve_tracking_uri(tracking_uri)
    client = open_client(uri)
    exp_id = get_or_create_experiment(client, IMPORT_EXPERIMENT, uri, artifact_location)
    source_sha = file_sha256(report.source)
    provenance = {TAG_ORIGIN: ORIGIN, TAG_SOURCE_FILE: report.source.name, TAG_SOURCE_SHA: source_sha}
    run = client.create_run(exp_id, run_name=f"import-{report.source.stem}", tags={KIND_TAG: KIND_IMPORT, **provenance})
    run_id = run.info.run_id
    status = "FAILED"
    try:
        for f in checkpoint_files(report.out):  # the weights and metrics, as promotion logs them
            client.log_artifact(run_id, str(f), "checkpoint")
        client.log_text(run_id, json.dumps(report.authors_metrics, indent=2), "authors_metrics.json")
        model_uri = log_embedding_model(uri, run_id, report.out)
        with tempfile.TemporaryDirectory(prefix="mscm-import-") as tmp:
            model_sha = tree_sha256(download(model_uri, Path(tmp) / "model", uri, "the model just logged"))
        _ensure_registered_model(client, name)
        tags = {
            TAG_CHECKPOINT_URI: f"runs:/{run_id}/checkpoint",
            TAG_CHECKPOINT_SHA: report.checkpoint_sha256,
            TAG_MODEL_SHA: model_sha,
            TAG_DATASET: report.dataset,
            TAG_CONFIG: report.config_yaml,
            **provenance,
            **{f"mscm.authors.{k}": f"{v:.6f}" for k, v in report.authors_metrics.items()},
        }
        mv = client.create_model_version(
            name, source=model_uri, run_id=run_id, tags=tags,
            description=f"Imported from {report.source.name} (SHA-256 {source_sha[:16]}): {ORIGIN}. "
            f"Converted by `mscm import-authors`; {len(report.dropped)} unused keys dropped.",
            model_id=model_uri.split("/", 1)[1] if model_uri.startswith("models:/") else None,
        )  # fmt: skip
        report.version = str(mv.version)
        if champion:
            client.set_registered_model_alias(name, ALIAS_CHAMPION, mv.version)
            report.alias = ALIAS_CHAMPION
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status)
