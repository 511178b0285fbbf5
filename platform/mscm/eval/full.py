"""The one evaluation of a model on a dataset's test protocols, used by training (its configured
protocol, every few epochs), by ``mscm evaluate`` and by promotion (every protocol).

:func:`evaluate_protocols` = :func:`extract_test_features` (one extraction per modality for every
protocol asked: SYSU indoor reuses the all-search features, RegDB and LLCM use the same features in
both directions) then :func:`rank_protocols` (which can run again on the same features, e.g.
multi-shot). What to run is an :class:`EvalRequest`; the images come from
:func:`mscm.eval.test_images.open_test_images`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config.schema import EvalConfig
from ..datasets import DATASETS, get_dataset, get_protocol
from ..datasets.records import Modality, VIReIDDataset
from ..datasets.spec import ProtocolSpec
from ..errors import UsageError
from .features import IndexedImages, features_for_eval
from .protocols import candidates, check_dataset
from .rerank import RERANK_PREFIX, RerankSettings
from .result import EvalResult
from .runner import evaluate_protocol
from .test_images import TestImages


def full_protocols(dataset: str) -> tuple[str, ...]:
    """The protocols reported for ``dataset``, in the papers' table order."""
    return get_dataset(dataset).protocol_names


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate. ``settings``: feature, flip TTA, batch size, trials and gallery mode (drawn
    galleries only). ``protocols``: empty = every protocol of the dataset. ``split``: for datasets with
    one model per split (RegDB), the split the dataset was read with; it numbers the single trial of
    a whole-gallery protocol. ``amp_dtype``: CUDA autocast dtype, None = fp32."""

    settings: EvalConfig
    protocols: tuple[str, ...] = ()
    split: int | None = None
    device: str | torch.device = "cpu"
    amp_dtype: torch.dtype | None = None
    progress: bool = False

    def names(self, dataset: VIReIDDataset) -> list[str]:
        return list(self.protocols or full_protocols(dataset.name))


def protocol_flip(settings: EvalConfig, protocol: ProtocolSpec) -> bool:
    """Whether ``protocol`` extracts with flip TTA: ``settings.flip``, or when it is null the authors'
    choice for the protocol (testD.py flips for LLCM VIS->IR only)."""
    return protocol.flip if settings.flip is None else settings.flip


Extraction = tuple[Modality, bool]  # (modality, flip TTA)


@dataclass
class TestFeatures:
    """Features of every test record the chosen protocols use, one extraction per modality and flip
    setting: ``rows[k]`` (ascending indices into the modality's test list) and ``features[k]`` aligned
    with them, ``k`` = (modality, flip); ``flips[name]``: each protocol's flip."""

    __test__ = False  # not a pytest test class

    protocols: list[str]
    rows: dict[Extraction, np.ndarray]
    features: dict[Extraction, torch.Tensor]
    feature: str
    flips: dict[str, bool]

    def of(self, modality: Modality, flip: bool, idx: np.ndarray) -> torch.Tensor:
        feats = self.features[(modality, flip)]
        return feats[torch.from_numpy(np.searchsorted(self.rows[(modality, flip)], idx)).to(feats.device)]


def extract_test_features(model: torch.nn.Module, images: TestImages, request: EvalRequest) -> TestFeatures:
    """One extraction per modality and flip setting over every record the request's protocols use;
    features stay on the request's device (ranking runs where the model ran)."""
    dataset = images.dataset
    names = request.names(dataset)
    specs = [get_protocol(n) for n in names]
    for spec in specs:
        check_dataset(spec, dataset)
    flips = {spec.name: protocol_flip(request.settings, spec) for spec in specs}
    needed: dict[Extraction, list[np.ndarray]] = {}
    for spec in specs:
        pool = candidates(spec, dataset)
        needed.setdefault((spec.query_modality, flips[spec.name]), []).append(pool.query)
        needed.setdefault((spec.gallery_modality, flips[spec.name]), []).append(pool.gallery)
    rows, feats = {}, {}
    for (modality, flip), parts in needed.items():
        rows[(modality, flip)] = np.unique(np.concatenate(parts))
        feats[(modality, flip)] = features_for_eval(
            model,
            IndexedImages(images.of(modality), rows[(modality, flip)]),
            modality,
            request.settings,
            flip=flip,
            device=request.device,
            amp_dtype=request.amp_dtype,
            progress=request.progress,
        ).to(request.device)
    return TestFeatures(names, rows, feats, request.settings.feature, flips)


def rank_protocols(features: TestFeatures, dataset: VIReIDDataset, request: EvalRequest) -> dict[str, EvalResult]:
    """Every protocol of ``features``: ``settings.trials`` seeded draws in ``settings.gallery_mode`` for
    drawn galleries (SYSU, LLCM); a whole gallery (RegDB) is ranked once, numbered by the split."""
    spec = get_dataset(dataset.name)
    if spec.per_split and request.split is None:
        raise ValueError(f"{spec.title}: the request needs the split (one model per split) the dataset was read with")
    out = {}
    settings = request.settings
    for name in features.protocols:
        protocol = get_protocol(name)
        pool = candidates(protocol, dataset)
        drawn, flip = protocol.drawn_gallery, features.flips[name]
        common = dict(
            trials=settings.trials if drawn else [request.split if spec.per_split else 0],
            gallery_mode=settings.gallery_mode if drawn else "single",
            feature=features.feature,
            flip=flip,
            pool=pool,
            progress=request.progress,
        )
        query = features.of(protocol.query_modality, flip, pool.query)
        gallery = features.of(protocol.gallery_modality, flip, pool.gallery)
        out[name] = evaluate_protocol(name, dataset, query, gallery, **common)
        if settings.rerank:  # under its own name: the plain numbers stay those the paper reports
            rerank = RerankSettings(settings.rerank_k1, settings.rerank_k2, settings.rerank_lambda)
            out[f"{RERANK_PREFIX}{name}"] = evaluate_protocol(name, dataset, query, gallery, **common, rerank=rerank)
    return out


def evaluate_protocols(model: torch.nn.Module, images: TestImages, request: EvalRequest) -> dict[str, EvalResult]:
    """The request's protocols on ``model`` (in eval mode), from ``images`` at the model's input size."""
    return rank_protocols(extract_test_features(model, images, request), images.dataset, request)


def combine_regdb_splits(per_split: Sequence[dict[str, EvalResult]]) -> dict[str, EvalResult]:
    """RegDB's reported result: each split's (single-trial) evaluation as one trial of the combined
    result, so the mean and std run over the splits. Splits must be distinct."""
    if not per_split:
        raise ValueError("no RegDB evaluations to combine")
    out = {}
    for name in per_split[0]:
        results = [r[name] for r in per_split]
        trials = [t for r in results for t in r.trials]
        check_combinable([r.dataset for r in results], [t.trial for t in trials])
        first = results[0]
        extra = {"splits": [r.extra for r in results]}
        out[name] = dataclasses.replace(first, trials=sorted(trials, key=lambda t: t.trial), extra=extra)
    return out


def check_combinable(layouts: list[str], splits: list[int]) -> None:
    """Several evaluations combine only as one model per split of a per-split dataset, each split once."""
    if len(set(layouts)) != 1 or not get_dataset(layouts[0]).per_split:
        per_split = [d.title for d in DATASETS.values() if d.per_split]
        raise UsageError(
            f"several checkpoints are combined only for {', '.join(per_split)} (one model per split); "
            f"got datasets {sorted(set(layouts))}"
        )
    if len(set(splits)) != len(splits):
        raise UsageError(f"{get_dataset(layouts[0]).title} splits repeat ({sorted(splits)}); give one model per split")
