"""The full test protocol of a dataset (what the papers' tables report), on a model or a checkpoint.

- :func:`full_protocols`: SYSU-MM01 all + indoor search, RegDB V->T and T->V, LLCM IR->VIS and VIS->IR
  (shared/design/eval-protocols.md, "Test protocols").
- :func:`evaluate_full`: every protocol of a dataset on a model; features are extracted once per
  modality for all protocols together (SYSU indoor reuses the all-search features, RegDB and LLCM
  use the same features in both directions): :func:`extract_test_features`, then
  :func:`rank_protocols` (which can run again on the same features, e.g. multi-shot).
- :func:`evaluate_checkpoint`: the same from a checkpoint directory and a dataset folder: what
  ``mscm evaluate`` and promotion run.
- :func:`combine_regdb_splits`: RegDB trains one model per split; the reported number is the
  mean over the splits' evaluations (each split one trial of the combined result).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config.schema import PROTOCOLS, EvalConfig
from ..data.records import Modality, VIReIDDataset
from ..errors import UsageError
from .features import IndexedImages, features_for_eval
from .protocols import candidates, check_dataset, get_protocol
from .result import EvalResult, format_paper_table, format_table, plot_cmc
from .runner import evaluate_protocol

if TYPE_CHECKING:
    from ..config.schema import RunConfig

REPORT_FORMAT = "mscm.eval.report"
REPORT_VERSION = 1
_AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def full_protocols(dataset: str) -> tuple[str, ...]:
    """The protocols reported for ``dataset`` ("sysu", "regdb" or "llcm"), in table order."""
    try:
        return PROTOCOLS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r} (choose from {sorted(PROTOCOLS)})") from None


def load_test_images(
    dataset: VIReIDDataset,
    height: int,
    width: int,
    *,
    cache_dir: str | None = None,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> tuple[VIReIDDataset, Sequence[np.ndarray], Sequence[np.ndarray]]:
    """The test images of ``dataset`` decoded at ``height`` x ``width`` (the model's input size) in the
    decoded-image cache, aligned with the returned dataset's test lists (unreadable images dropped
    from both when ``skip_corrupt``)."""
    from ..data import drop_skipped
    from ..data.cache import ImageCache

    vis = ImageCache(dataset.test_visible, height, width, cache_dir, skip_corrupt=skip_corrupt, progress=progress)
    ir = ImageCache(dataset.test_infrared, height, width, cache_dir, skip_corrupt=skip_corrupt, progress=progress)
    return drop_skipped(dataset, [vis, ir]), vis, ir


@dataclass
class TestFeatures:
    """Features of every test record the chosen protocols use, one extraction per modality:
    ``rows[m]`` (ascending indices into the modality's test list) and ``features[m]`` aligned with them."""

    protocols: list[str]
    rows: dict[Modality, np.ndarray]
    features: dict[Modality, torch.Tensor]
    feature: str
    flip: bool

    def of(self, modality: Modality, idx: np.ndarray) -> torch.Tensor:
        feats = self.features[modality]
        return feats[torch.from_numpy(np.searchsorted(self.rows[modality], idx)).to(feats.device)]


def _check_images(dataset: VIReIDDataset, images_visible: Sequence, images_infrared: Sequence) -> None:
    for name, imgs, recs in (
        ("images_visible", images_visible, dataset.test_visible),
        ("images_infrared", images_infrared, dataset.test_infrared),
    ):
        if len(imgs) != len(recs):
            raise ValueError(f"{name} has {len(imgs)} images for {len(recs)} test records")


def extract_test_features(
    model: torch.nn.Module,
    dataset: VIReIDDataset,
    eval_cfg: EvalConfig,
    images_visible: Sequence[np.ndarray],
    images_infrared: Sequence[np.ndarray],
    *,
    protocols: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> TestFeatures:
    """One extraction per modality over every record the protocols use (default: the dataset's
    full set), with ``eval_cfg``'s feature, flip and batch size; features stay on ``device``."""
    names = list(protocols) if protocols is not None else list(full_protocols(dataset.name))
    if not names:
        raise ValueError("no protocols to run")
    specs = [get_protocol(n) for n in names]
    for spec in specs:
        check_dataset(spec, dataset)
    _check_images(dataset, images_visible, images_infrared)
    needed: dict[Modality, list[np.ndarray]] = {Modality.VISIBLE: [], Modality.INFRARED: []}
    for spec in specs:
        pool = candidates(spec, dataset)
        needed[spec.query_modality].append(pool.query)
        needed[spec.gallery_modality].append(pool.gallery)
    images = {Modality.VISIBLE: images_visible, Modality.INFRARED: images_infrared}
    rows, feats = {}, {}
    for modality, parts in needed.items():
        if parts:
            rows[modality] = np.unique(np.concatenate(parts))
            feats[modality] = features_for_eval(
                model,
                IndexedImages(images[modality], rows[modality]),
                modality,
                eval_cfg,
                device=device,
                amp_dtype=amp_dtype,
                progress=progress,
            ).to(device)  # rank where the model ran
    return TestFeatures(names, rows, feats, eval_cfg.feature, eval_cfg.flip)


def _rank(
    features: TestFeatures,
    dataset: VIReIDDataset,
    name: str,
    trials: int | Sequence[int],
    gallery_mode: str,
    progress: bool,
) -> EvalResult:
    spec = get_protocol(name)
    pool = candidates(spec, dataset)
    return evaluate_protocol(
        name,
        dataset,
        features.of(spec.query_modality, pool.query),
        features.of(spec.gallery_modality, pool.gallery),
        trials=trials,
        gallery_mode=gallery_mode if spec.drawn_gallery else "single",  # type: ignore[arg-type]
        feature=features.feature,
        flip=features.flip,
        pool=pool,
        progress=progress,
    )


def rank_protocols(
    features: TestFeatures,
    dataset: VIReIDDataset,
    *,
    trials: int = 10,
    gallery_mode: str = "single",
    regdb_split: int | None = None,
    progress: bool = True,
) -> dict[str, EvalResult]:
    """Every protocol of ``features`` from them: ``trials`` seeded draws and ``gallery_mode`` for the
    drawn galleries (SYSU, LLCM); RegDB uses its whole gallery once, numbered ``regdb_split``."""
    if dataset.name == "regdb" and regdb_split is None:
        raise ValueError("RegDB: pass regdb_split, the split (1..10) the dataset was read with")
    return {
        name: _rank(
            features,
            dataset,
            name,
            trials if get_protocol(name).drawn_gallery else [regdb_split],
            gallery_mode,
            progress,
        )
        for name in features.protocols
    }


def evaluate(
    model: torch.nn.Module,
    dataset: VIReIDDataset,
    eval_cfg: EvalConfig,
    images_visible: Sequence[np.ndarray],
    images_infrared: Sequence[np.ndarray],
    *,
    trials: int | Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``model`` on ``eval_cfg.protocol`` (the per-epoch evaluation of training): one
    feature extraction, then every trial.

    ``images_visible`` / ``images_infrared`` are aligned with ``dataset.test_visible`` /
    ``dataset.test_infrared`` (only the records the protocol can use are read). ``trials``: None =
    ``eval_cfg.trials``; an int n = trials 0..n-1; or explicit trial numbers.
    """
    feats = extract_test_features(
        model,
        dataset,
        eval_cfg,
        images_visible,
        images_infrared,
        protocols=[eval_cfg.protocol],
        device=device,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    return _rank(
        feats,
        dataset,
        eval_cfg.protocol,
        eval_cfg.trials if trials is None else trials,
        eval_cfg.gallery_mode,
        progress,
    )


def evaluate_full(
    model: torch.nn.Module,
    dataset: VIReIDDataset,
    eval_cfg: EvalConfig,
    images_visible: Sequence[np.ndarray],
    images_infrared: Sequence[np.ndarray],
    *,
    protocols: Sequence[str] | None = None,
    trials: int | None = None,
    regdb_split: int | None = None,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    progress: bool = True,
) -> dict[str, EvalResult]:
    """Every protocol in ``protocols`` (default: :func:`full_protocols` of the dataset) on ``model``.

    ``images_visible`` / ``images_infrared`` are aligned with ``dataset.test_visible`` /
    ``dataset.test_infrared`` at the model's input size (see :func:`load_test_images`).
    ``eval_cfg`` gives the feature, flip TTA, batch size, gallery mode (drawn galleries only; RegDB
    always uses its whole gallery) and trials (``trials`` overrides it). RegDB needs
    ``regdb_split``: the split the dataset was read with, which numbers its single trial.
    Features are extracted once per modality for all protocols (:func:`extract_test_features`),
    then each protocol is ranked (:func:`rank_protocols`).
    """
    if dataset.name == "regdb" and regdb_split is None:
        raise ValueError("RegDB: pass regdb_split, the split (1..10) the dataset was read with")
    feats = extract_test_features(
        model,
        dataset,
        eval_cfg,
        images_visible,
        images_infrared,
        protocols=protocols,
        device=device,
        amp_dtype=amp_dtype,
        progress=progress,
    )
    return rank_protocols(
        feats,
        dataset,
        trials=eval_cfg.trials if trials is None else trials,
        gallery_mode=eval_cfg.gallery_mode,
        regdb_split=regdb_split,
        progress=progress,
    )


def combine_regdb_splits(per_split: Sequence[dict[str, EvalResult]]) -> dict[str, EvalResult]:
    """RegDB's reported result: each split's (single-trial) evaluation as one trial of the combined
    result, so the mean and std run over the splits. Splits must be distinct."""
    if not per_split:
        raise ValueError("no RegDB evaluations to combine")
    out = {}
    for name in per_split[0]:
        results = [r[name] for r in per_split]
        trials = [t for r in results for t in r.trials]
        _check_combinable([r.dataset for r in results], [t.trial for t in trials])
        first = results[0]
        extra = {"splits": [r.extra for r in results]}
        out[name] = dataclasses.replace(first, trials=sorted(trials, key=lambda t: t.trial), extra=extra)
    return out


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
        detail = format_table(
            [(get_protocol(name).label, r) for name, r in self.results.items()], label_header="Setting"
        )
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
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def plot_cmc(self, path: str | Path) -> Path:
        return plot_cmc([(get_protocol(name).label, r) for name, r in self.results.items()], path)


def _eval_settings(
    cfg: RunConfig, trials: int | None, flip: bool | None, feature: str | None, gallery_mode: str | None
) -> EvalConfig:
    """The checkpoint's evaluation settings with the caller's overrides, validated like any config."""
    from ..config import from_dict, to_dict

    overrides = {
        k: v
        for k, v in (("trials", trials), ("flip", flip), ("feature", feature), ("gallery_mode", gallery_mode))
        if v is not None
    }
    if not overrides:
        return cfg.eval
    return from_dict(EvalConfig, {**to_dict(cfg.eval), **overrides}, source="evaluation options", prefix="eval")


def _read_eval_dataset(
    cfg: RunConfig, layout: str, root: str | None, regdb_split: int, progress: bool
) -> VIReIDDataset:
    from ..data import build_dataset, read_dataset

    if root is not None:
        return read_dataset(layout, root, regdb_trial=regdb_split)
    if layout != cfg.data.dataset:
        raise UsageError(f"the checkpoint was trained on {cfg.data.dataset}; give the {layout} dataset folder")
    # The checkpoint's own dataset: its configured folder, or the synthetic data it trained on.
    data_cfg = dataclasses.replace(cfg.data, regdb_trial=regdb_split)
    return build_dataset(data_cfg, progress=progress)


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    dataset_root: str | None = None,
    layout: str | None = None,
    protocols: Sequence[str] | None = None,
    trials: int | None = None,
    flip: bool | None = None,
    feature: str | None = None,
    gallery_mode: str | None = None,
    regdb_split: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> Report:
    """Evaluate the model of a checkpoint directory (``mscm.checkpoint.save_checkpoint``) on the full
    protocol of a dataset.

    ``layout`` defaults to the checkpoint's dataset; ``dataset_root`` to the checkpoint's
    ``data.root`` (null: the synthetic dataset it was trained on). ``regdb_split`` defaults to the
    checkpoint's ``data.regdb_trial``. ``device`` defaults to CUDA when available; ``precision``
    (fp32/bf16/fp16, autocast on CUDA only) to the checkpoint's ``train.precision``. Raises
    :class:`mscm.checkpoint.CheckpointError` for a missing or foreign checkpoint and
    :class:`mscm.data.DatasetError` for a missing or malformed dataset.
    """
    from ..checkpoint import load_model
    from ..preflight.dataset import check_images, print_warnings

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, cfg, payload = load_model(checkpoint, device)
    layout = layout or cfg.data.dataset
    for name in protocols or ():  # before any image is read
        if get_protocol(name).dataset != layout:
            raise UsageError(
                f"protocol {name!r} is not a protocol of {layout} (its protocols: {list(full_protocols(layout))})"
            )
    split = regdb_split if regdb_split is not None else cfg.data.regdb_trial
    if precision is not None and precision not in _AMP:
        raise UsageError(f"precision must be one of {list(_AMP)}, got {precision!r}")
    amp = _AMP[precision or cfg.train.precision] if torch.device(device).type == "cuda" else None
    eval_cfg = _eval_settings(cfg, trials, flip, feature, gallery_mode)
    root = dataset_root if dataset_root is not None else (cfg.data.root if layout == cfg.data.dataset else None)
    dataset = _read_eval_dataset(cfg, layout, root, split, progress)
    print_warnings(check_images(dataset, skip_corrupt=cfg.data.skip_corrupt, progress=progress).warnings)
    h, w = cfg.data.height, cfg.data.width
    dataset, vis, ir = load_test_images(
        dataset, h, w, cache_dir=cache_dir or cfg.data.cache_dir, skip_corrupt=cfg.data.skip_corrupt, progress=progress
    )
    results = evaluate_full(
        model,
        dataset,
        eval_cfg,
        vis,
        ir,
        protocols=protocols,
        regdb_split=split if layout == "regdb" else None,
        device=device,
        amp_dtype=amp,
        progress=progress,
    )
    provenance = {
        "checkpoint": str(Path(checkpoint).absolute()),
        "epoch": int(payload.get("epoch", -1)),
        "run_name": cfg.name,
    }
    for r in results.values():
        r.extra.update(provenance)
    return Report(
        results=results,
        checkpoints=[provenance["checkpoint"]],
        dataset={
            "layout": layout,
            "root": dataset.root,
            "split": dataset.split,
            **({"regdb_split": split} if layout == "regdb" else {}),
            "test_visible": len(dataset.test_visible),
            "test_infrared": len(dataset.test_infrared),
        },
        settings={
            "feature": eval_cfg.feature,
            "flip": eval_cfg.flip,
            "gallery_mode": eval_cfg.gallery_mode,
            "trials": eval_cfg.trials,
            "device": str(device),
            "precision": "fp32" if amp is None else str(amp).replace("torch.", ""),
            "image_size": [h, w],
        },
        name=cfg.name,
    )


def evaluate_checkpoints(checkpoints: Sequence[str | Path], **options: Any) -> Report:
    """:func:`evaluate_checkpoint` on each checkpoint, as one report. Several checkpoints are for
    RegDB, one model per split (each tested on its own ``data.regdb_trial``): checked before any
    evaluation runs, then combined with :func:`combine_regdb_splits`."""
    from ..preflight import preflight_checkpoints

    if not checkpoints:
        raise UsageError("no checkpoint given")
    cfgs = preflight_checkpoints(checkpoints)  # every one, before any image is read
    if len(checkpoints) > 1:
        if options.get("regdb_split") is not None:
            raise UsageError("regdb_split goes with a single checkpoint (several are one per split)")
        _check_combinable([options.get("layout") or c.data.dataset for c in cfgs], [c.data.regdb_trial for c in cfgs])
    return merge_reports([evaluate_checkpoint(c, **options) for c in checkpoints])


def _check_combinable(layouts: list[str], splits: list[int]) -> None:
    if set(layouts) != {"regdb"}:
        raise UsageError(
            "several checkpoints are combined only for RegDB (one model per split); "
            f"got datasets {sorted(set(layouts))}"
        )
    if len(set(splits)) != len(splits):
        raise UsageError(f"RegDB splits repeat ({sorted(splits)}); give one model per split")


def merge_reports(reports: Sequence[Report]) -> Report:
    """Several RegDB checkpoints (one per split) as one report over the splits."""
    if len(reports) == 1:
        return reports[0]
    _check_combinable([r.dataset["layout"] for r in reports], [r.dataset.get("regdb_split") for r in reports])
    results = combine_regdb_splits([r.results for r in reports])
    dataset = dict(reports[0].dataset)
    dataset["regdb_split"] = sorted(r.dataset["regdb_split"] for r in reports)
    return Report(results, [c for r in reports for c in r.checkpoints], dataset, reports[0].settings, reports[0].name)
