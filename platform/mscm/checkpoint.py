"""The on-disk checkpoint format, shared by training, evaluation, export and promotion.

A checkpoint is a directory (what Ray Train persists) with:
  model.pt        {"format", "version", "config", "num_classes", "epoch", "metrics", "state_dict"}
  train_state.pt  optimiser, scheduler, scaler, sampler and RNG states (only needed to resume)
  metrics.json    the metrics reported with it, human-readable
Both .pt files are loaded with ``weights_only=True``; anything that is not an mscm checkpoint, or one
whose config does not build a model with the same parameters, is refused with a clear error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, RunConfig, from_dict, to_dict
from .errors import MscmError
from .redact import redact_values
from .torchfile import load_tensors

FORMAT = "mscm.mscmnet"
VERSION = 1
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.json"


class CheckpointError(MscmError, ValueError):
    """A file or folder is not a usable mscm checkpoint."""


def save_checkpoint(
    directory: str | Path,
    *,
    cfg: RunConfig,
    num_classes: int,
    model: torch.nn.Module,
    epoch: int,
    metrics: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DDP
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": redact_values(to_dict(cfg)),  # no password in a file that travels
        "num_classes": int(num_classes),
        "epoch": int(epoch),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))},
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    torch.save(payload, directory / MODEL_FILE)
    if train_state is not None:
        torch.save(train_state, directory / STATE_FILE)
    clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in payload["metrics"].items()}
    (directory / METRICS_FILE).write_text(json.dumps({"epoch": epoch, **clean}, indent=2))
    return directory


def weights_sha256(path: str | Path) -> str:
    """Identity of a checkpoint file's weights (:func:`state_dict_sha256` of its state dict)."""
    return state_dict_sha256(load_model_payload(path)["state_dict"])


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order. Unlike a file's hash it
    survives re-serialisation (``torch.save`` writes a random id into each file), so a checkpoint rebuilt
    from its logged model has the same identity."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def checkpoint_files(directory: str | Path) -> list[Path]:
    """What outlives training of a checkpoint: the model and its metrics (not the optimiser state)."""
    directory = Path(directory)
    return [p for p in (directory / MODEL_FILE, directory / METRICS_FILE) if p.is_file()]


def read_metrics(directory: str | Path) -> dict[str, Any]:
    """The metrics saved with a checkpoint (its metrics.json), or {} when it has none."""
    file = Path(directory) / METRICS_FILE
    return json.loads(file.read_text()) if file.is_file() else {}


def _model_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    return path


def load_model_payload(path: str | Path) -> dict[str, Any]:
    """The validated model payload of a checkpoint file or directory."""
    file = _model_file(path)
    try:
        payload = load_tensors(file)
    except ValueError as e:  # pickle errors, truncated files, foreign objects refused by weights_only
        raise CheckpointError(f"{file}: not a loadable checkpoint: {e}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{file}: not an mscm MSCMNet checkpoint (format {found!r}, expected {FORMAT!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{file}: checkpoint version {payload.get('version')} is not supported ({VERSION})")
    return payload


def config_of(payload: dict[str, Any], source: str = "checkpoint") -> RunConfig:
    try:
        return from_dict(RunConfig, payload["config"], source=source)
    except ConfigError as e:
        raise CheckpointError(f"{source}: its config is invalid for this version of mscm: {e}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, RunConfig, dict]:
    """Rebuild the model of a checkpoint in eval mode: ``(model, config, payload)``."""
    from .model import build_model

    file = _model_file(path)
    payload = load_model_payload(file)
    cfg = config_of(payload, str(file))
    # The weights come from the checkpoint: never re-read the ImageNet file it was initialised from.
    model_cfg = dataclasses.replace(cfg.model, pretrained=None)
    model = build_model(model_cfg, payload["num_classes"], cfg.data.height, cfg.data.width)
    load_state_strict(model, payload["state_dict"], str(file))
    return model.to(device).eval(), cfg, payload


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, naming the first missing/unexpected/mis-shaped key on mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatches (first: {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{source}: weights do not fit this model: " + "; ".join(parts))
    model.load_state_dict(state)


def load_train_state(directory: str | Path) -> dict[str, Any]:
    file = Path(directory) / STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: training state not found (a model-only checkpoint cannot resume)")
    try:
        return load_tensors(file)
    except ValueError as e:
        raise CheckpointError(f"{file}: not a loadable training state: {e}") from None
