"""Where a model comes from: a checkpoint folder, or an MLflow model URI (``models:/<name>@<alias>``,
``models:/<name>/<version>``, ``runs:/...``, ``models:/m-...``).

- :func:`load_embedder` gives the inference path (:mod:`mscm.model.inference` signature) and its input
  size: an EmbeddingModel, from a checkpoint folder or from the checkpoint inside an MLflow model.
- :func:`checkpoint_for` gives the checkpoint a registered version was made from (verified against
  the SHA-256 recorded at promotion), for export and re-evaluation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import MODEL_FILE
from ..errors import RegistryError
from .describe import TAG_CHECKPOINT_SHA, TAG_CHECKPOINT_URI

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelSourceError(RegistryError):
    """A model source is missing, damaged, or not one mscm can use."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_sha256(directory: str | Path, what: str | None = None) -> str:
    """Identity of a checkpoint's weights (:func:`mscm.checkpoint.weights_sha256`); a file that does not
    load is reported as corrupted."""
    from ..checkpoint import CheckpointError, weights_sha256

    try:
        return weights_sha256(directory)
    except CheckpointError as e:
        raise ModelSourceError(f"{what or directory} is corrupted: {e}") from None


def tree_sha256(directory: str | Path) -> str:
    """SHA-256 over every file of a folder (relative name and content), in sorted order."""
    directory = Path(directory)
    if directory.is_file():
        return file_sha256(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise ModelSourceError(f"{directory}: no files")
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(directory).as_posix().encode() + b"\0" + file_sha256(p).encode())
    return h.hexdigest()


def download(uri: str, dst: str | Path, tracking_uri: str | None, what: str) -> Path:
    import mlflow.artifacts

    from ..tracking.model_logging import quiet_artifact_progress

    Path(dst).mkdir(parents=True, exist_ok=True)
    try:
        with quiet_artifact_progress():
            return Path(
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri)
            )
    except Exception as e:  # MlflowException, OSError: deleted artifacts, a store that moved
        raise ModelSourceError(f"{what} is missing: {uri} cannot be read ({type(e).__name__}: {e})") from None


def check_sha(found: str, recorded: str, what: str) -> None:
    if found != recorded:
        raise ModelSourceError(f"{what} is corrupted: SHA-256 {found[:16]}… but {recorded[:16]}… was registered")


def parse_model_uri(uri: str) -> re.Match:
    m = _MODEL_URI.match(uri)
    if not m:
        raise ModelSourceError(
            f"{uri!r} is not a registered model URI (models:/<name>@<alias> or models:/<name>/<version>)"
        )
    return m


def resolve_version(client, uri: str):
    """The ModelVersion of ``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""
    from mlflow.exceptions import MlflowException

    m = parse_model_uri(uri)
    try:
        if m["alias"]:
            return client.get_model_version_by_alias(m["name"], m["alias"])
        return client.get_model_version(m["name"], m["version"])
    except MlflowException as e:
        raise ModelSourceError(f"{uri}: not in the registry at {client.tracking_uri} ({e.message})") from None


def version_checkpoint(client, mv, scratch: str | Path) -> Path:
    """The checkpoint a version was registered from, downloaded and checked against its SHA-256 tag."""
    where = f"version {mv.version} of {mv.name!r}"
    if TAG_CHECKPOINT_URI not in mv.tags or TAG_CHECKPOINT_SHA not in mv.tags:
        raise ModelSourceError(f"{where} was not registered by mscm promote (no {TAG_CHECKPOINT_URI} tag)")
    ckpt = download(mv.tags[TAG_CHECKPOINT_URI], scratch, client.tracking_uri, f"{where}: its checkpoint")
    if not (ckpt / MODEL_FILE).is_file():
        raise ModelSourceError(f"{where}: its checkpoint {mv.tags[TAG_CHECKPOINT_URI]} has no {MODEL_FILE}")
    what = f"{where}: checkpoint {mv.tags[TAG_CHECKPOINT_URI]}"
    check_sha(checkpoint_sha256(ckpt, what), mv.tags[TAG_CHECKPOINT_SHA], what)
    return ckpt


def is_checkpoint_dir(source: str | Path) -> bool:
    return Path(source).is_dir() and (Path(source) / MODEL_FILE).is_file()


def checkpoint_for(source: str, scratch: str | Path, tracking_uri: str | None = None) -> Path:
    """A checkpoint folder as it is, or the verified checkpoint of a registered version."""
    if is_checkpoint_dir(source):
        return Path(source)
    if not source.startswith("models:/"):
        raise ModelSourceError(f"{source!r} is neither a checkpoint folder (with {MODEL_FILE}) nor a models:/ URI")
    parse_model_uri(source)  # before opening the store
    client = registry_client(tracking_uri)
    return version_checkpoint(client, resolve_version(client, source), scratch)


def registry_client(tracking_uri: str | None):
    """A client of an existing MLflow store (checked first: reading never creates an empty store),
    naming its registry explicitly: never the process-global one."""
    from ..preflight.stores import check_tracking_uri
    from ..tracking.mlflow_run import resolve_tracking_uri
    from ..tracking.store_open import open_client

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri, must_exist=True)
    return open_client(uri)


@dataclass
class Embedder:
    """``embed(images uint8 (B,H,W,3), modality int64 (B,)) -> float32 (B,D)`` at ``height`` x ``width``."""

    module: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    height: int
    width: int
    source: str

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        return self.module(images, modality).float()


def load_embedder(source: str, tracking_uri: str | None = None) -> Embedder:
    if source.lower().endswith(".onnx") and Path(source).is_file():  # ONNX Runtime, no torch model code
        from .onnx_model import OnnxError, OnnxRunner

        try:
            runner = OnnxRunner(source)
        except OnnxError as e:
            raise ModelSourceError(str(e)) from None
        return Embedder(runner, runner.height, runner.width, source)
    if is_checkpoint_dir(source):
        from ..tracking.model_logging import embedding_model_from_checkpoint

        module, cfg, _ = embedding_model_from_checkpoint(source)
        return Embedder(module, cfg.data.height, cfg.data.width, source)
    if not source.startswith(("models:/", "runs:/")):
        raise ModelSourceError(
            f"{source!r} is neither a checkpoint folder (with {MODEL_FILE}), an .onnx file from mscm export, nor an "
            "MLflow model URI (models:/<name>@<alias>, models:/<name>/<version>, runs:/...)"
        )
    import mlflow

    from ..tracking.model_logging import load_logged_model

    uri = registry_client(tracking_uri).tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        module, cfg, _ = load_logged_model(source, uri)  # the checkpoint's config: its input size
    except Exception as e:  # MlflowException, OSError, CheckpointError
        raise ModelSourceError(f"{source}: cannot load it from {uri} ({type(e).__name__}: {e})") from None
    return Embedder(module, cfg.data.height, cfg.data.width, source)
