"""``mscm evaluate``'s work: the model of a checkpoint directory on the full test protocol of a dataset
(its configured folder, another folder in a known layout, or the synthetic data it trained on)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config.schema import EvalConfig
from ..datasets import get_dataset, get_protocol
from ..datasets.records import VIReIDDataset
from ..errors import UsageError
from .features import eval_amp_dtype
from .full import EvalRequest, check_combinable, extract_test_features, full_protocols, rank_protocols
from .report import Report, merge_reports
from .test_images import open_test_images

if TYPE_CHECKING:
    from ..config.schema import RunConfig


@dataclass(frozen=True)
class EvalOptions:
    """The caller's choices; None keeps the checkpoint's own value. ``layout`` defaults to the
    checkpoint's dataset, ``dataset_root`` to its ``data.root`` (null: the synthetic dataset it trained
    on), ``split`` to its ``data.regdb_trial``, ``device`` to CUDA when available and ``precision``
    (fp32/bf16/fp16, autocast on CUDA only) to its ``eval.precision``."""

    dataset_root: str | None = None
    layout: str | None = None
    protocols: tuple[str, ...] = ()
    trials: int | None = None
    flip: bool | None = None
    feature: str | None = None
    gallery_mode: str | None = None
    split: int | None = None
    device: str | None = None
    precision: str | None = None
    cache_dir: str | None = None
    rerank: bool | None = None
    ranked_lists: int = 0  # top-K of the ranked-list grids (0: none), written under ranked_dir
    ranked_dir: str | None = None
    progress: bool = True

    def settings(self, cfg: RunConfig) -> EvalConfig:
        """The checkpoint's evaluation settings with these overrides, validated like any config."""
        from ..config import from_dict, to_dict

        chosen = {
            "trials": self.trials,
            "flip": self.flip,
            "feature": self.feature,
            "gallery_mode": self.gallery_mode,
            "precision": self.precision,
            "rerank": self.rerank,
        }
        overrides = {k: v for k, v in chosen.items() if v is not None}
        if not overrides:
            return cfg.eval
        return from_dict(EvalConfig, {**to_dict(cfg.eval), **overrides}, source="evaluation options", prefix="eval")


def _request(cfg: RunConfig, layout: str, options: EvalOptions) -> EvalRequest:
    """The request for this checkpoint, checked before any image is read."""
    for name in options.protocols:
        if get_protocol(name).dataset != layout:
            raise UsageError(
                f"protocol {name!r} is not a protocol of {layout} (its protocols: {list(full_protocols(layout))})"
            )
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings = options.settings(cfg)  # checks precision like any config value
    split = options.split if options.split is not None else cfg.data.regdb_trial
    return EvalRequest(
        settings=settings,
        protocols=tuple(options.protocols),
        split=split if get_dataset(layout).per_split else None,
        device=device,
        amp_dtype=eval_amp_dtype(settings, device),
        progress=options.progress,
    )


def _read_dataset(cfg: RunConfig, layout: str, options: EvalOptions, split: int) -> VIReIDDataset:
    from ..data import build_dataset, read_dataset

    root = options.dataset_root
    if root is None and layout == cfg.data.dataset:
        root = cfg.data.root
    if root is not None:
        return read_dataset(layout, root, split=split)
    if layout != cfg.data.dataset:
        raise UsageError(f"the checkpoint was trained on {cfg.data.dataset}; give the {layout} dataset folder")
    # The checkpoint's own dataset: the synthetic data it trained on.
    return build_dataset(dataclasses.replace(cfg.data, regdb_trial=split), progress=options.progress)


def evaluate_checkpoint(checkpoint: str | Path, options: EvalOptions = EvalOptions()) -> Report:
    """The model of a checkpoint directory (``mscm.checkpoint.save_checkpoint``) on the full protocol
    of a dataset. Raises :class:`mscm.checkpoint.CheckpointError` for a missing or foreign checkpoint
    and :class:`mscm.data.DatasetError` for a missing or malformed dataset."""
    from ..checkpoint import load_model
    from ..preflight.dataset import check_images, print_warnings

    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, cfg, payload = load_model(checkpoint, device)
    layout = options.layout or cfg.data.dataset
    request = _request(cfg, layout, dataclasses.replace(options, device=device))
    split = request.split if request.split is not None else cfg.data.regdb_trial
    dataset = _read_dataset(cfg, layout, options, split)
    print_warnings(check_images(dataset, skip_corrupt=cfg.data.skip_corrupt, progress=options.progress).warnings)
    images = open_test_images(
        dataset,
        cfg.data.height,
        cfg.data.width,
        cache_dir=options.cache_dir or cfg.data.cache_dir,
        skip_corrupt=cfg.data.skip_corrupt,
        progress=options.progress,
    )
    features = extract_test_features(model, images, request)
    results = rank_protocols(features, images.dataset, request)
    if options.ranked_lists > 0:
        from .ranked_lists import write_ranked_lists

        for name in features.protocols:
            path = Path(options.ranked_dir or ".", f"ranked-{name}.png")
            write_ranked_lists(features, images, request, name, path, k=options.ranked_lists)
            print(f"wrote {path}")
    provenance = {"checkpoint": str(Path(checkpoint).absolute()), "epoch": int(payload.get("epoch", -1))}
    for r in results.values():
        r.extra.update(provenance, run_name=cfg.name)
    return Report(
        results=results,
        checkpoints=[provenance["checkpoint"]],
        dataset=_dataset_summary(images.dataset, layout, request.split),
        settings=_settings_summary(request, images.size),
        name=cfg.name,
    )


def _dataset_summary(dataset: VIReIDDataset, layout: str, split: int | None) -> dict[str, Any]:
    return {
        "layout": layout,
        "root": dataset.root,
        "split": dataset.split,
        **({"regdb_split": split} if split is not None else {}),
        "test_visible": len(dataset.test_visible),
        "test_infrared": len(dataset.test_infrared),
    }


def _settings_summary(request: EvalRequest, size: tuple[int, int]) -> dict[str, Any]:
    s = request.settings
    return {
        "feature": s.feature,
        "flip": "per protocol" if s.flip is None else s.flip,
        "flip_normalize": s.flip_normalize,
        "gallery_mode": s.gallery_mode,
        "trials": s.trials,
        "device": str(request.device),
        "precision": "fp32" if request.amp_dtype is None else str(request.amp_dtype).replace("torch.", ""),
        "image_size": list(size),
    }


def evaluate_checkpoints(checkpoints: Sequence[str | Path], options: EvalOptions = EvalOptions()) -> Report:
    """:func:`evaluate_checkpoint` on each checkpoint, as one report. Several checkpoints are for a
    dataset with one model per split (RegDB), each tested on its own ``data.regdb_trial``: checked
    before any evaluation runs, then combined with :func:`mscm.eval.full.combine_regdb_splits`."""
    from ..preflight import preflight_checkpoints

    if not checkpoints:
        raise UsageError("no checkpoint given")
    cfgs = preflight_checkpoints(checkpoints)  # every one, before any image is read
    if len(checkpoints) > 1:
        if options.split is not None:
            raise UsageError("--regdb-split goes with a single checkpoint (several are one per split)")
        check_combinable([options.layout or c.data.dataset for c in cfgs], [c.data.regdb_trial for c in cfgs])
    return merge_reports([evaluate_checkpoint(c, options) for c in checkpoints])
