"""The evaluation a promotion runs: every protocol of a dataset (SYSU both search modes, RegDB and
LLCM both directions), all trials, on the dataset's real test split.

``evaluate_full_protocol`` is the one adapter onto :mod:`mscm.eval`; switching it to a full-protocol
helper of the eval package touches only this function.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import PROTOCOLS, DataConfig, RunConfig
from ..data import VIReIDDataset, build_dataset, drop_skipped
from ..data.cache import ImageCache
from ..data.fingerprint import data_fingerprint
from ..eval import EvalResult
from .settings import PromotionSettings


@dataclass
class EvalData:
    """The test split of one dataset and its decoded images, one cache pair per input size."""

    config: DataConfig
    dataset: VIReIDDataset
    fingerprint: str
    _caches: dict[tuple[int, int], tuple[ImageCache, ImageCache]] = field(default_factory=dict, repr=False)

    @property
    def protocols(self) -> tuple[str, ...]:
        return PROTOCOLS[self.dataset.name]

    def caches(self, height: int, width: int, progress: bool = False) -> tuple[ImageCache, ImageCache]:
        key = (height, width)
        if key not in self._caches:
            cfg = self.config
            self._caches[key] = tuple(  # type: ignore[assignment]
                ImageCache(records, height, width, cfg.cache_dir, skip_corrupt=cfg.skip_corrupt, progress=progress)
                for records in (self.dataset.test_visible, self.dataset.test_infrared)
            )
            if any(c.skipped for c in self._caches[key]):
                # Keep the record lists aligned with what the caches hold (only with data.skip_corrupt).
                self.dataset = drop_skipped(self.dataset, self._caches[key])
        return self._caches[key]


def load_eval_data(data_cfg: DataConfig, dataset_root: str | Path | None = None) -> EvalData:
    """The test split of a run's dataset: never a held-out validation split (``val_identities``)."""
    if dataset_root is not None:
        data_cfg = dataclasses.replace(data_cfg, root=str(dataset_root))
    dataset = build_dataset(data_cfg, progress=False)
    paths = [r.path for r in dataset.test_visible + dataset.test_infrared]
    return EvalData(data_cfg, dataset, data_fingerprint(paths))


def evaluate_full_protocol(
    model: torch.nn.Module,
    cfg: RunConfig,
    data: EvalData,
    settings: PromotionSettings,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, EvalResult]:
    """Every protocol of ``data``'s dataset for one model (``cfg``: that model's run config, which sets
    its input size and test-time feature). Features are extracted once per modality for all test
    records and each protocol picks its candidates' rows."""
    from ..data.records import Modality
    from ..eval import candidates, evaluate_protocol, features_for_eval, get_protocol

    if cfg.data.dataset != data.dataset.name:
        raise ValueError(f"a {cfg.data.dataset} model cannot be evaluated on {data.dataset.name} data")
    vis, ir = data.caches(cfg.data.height, cfg.data.width, progress=progress)
    feats = {
        m: features_for_eval(model, images, m, cfg.eval, device=device, progress=progress)
        for m, images in ((Modality.VISIBLE, vis), (Modality.INFRARED, ir))
    }
    results = {}
    for name in data.protocols:
        spec = get_protocol(name)
        pool = candidates(spec, data.dataset)
        results[name] = evaluate_protocol(
            name,
            data.dataset,
            feats[spec.query_modality][pool.query],
            feats[spec.gallery_modality][pool.gallery],
            trials=settings.trials,
            gallery_mode=settings.gallery_mode if spec.drawn_gallery else "single",
            feature=cfg.eval.feature,
            flip=cfg.eval.flip,
            pool=pool,
        )
    return results


def decision_value(results: dict[str, EvalResult], settings: PromotionSettings) -> float:
    """The number a promotion compares: the metric on the chosen protocol, or its mean over all."""
    if settings.protocol is not None:
        if settings.protocol not in results:
            raise ValueError(f"protocol {settings.protocol!r} is not one of this dataset's ({sorted(results)})")
        return results[settings.protocol].mean[settings.metric]
    return sum(r.mean[settings.metric] for r in results.values()) / len(results)


def decision_label(results: dict[str, EvalResult], settings: PromotionSettings) -> str:
    where = settings.protocol or "mean of " + ", ".join(results)
    trials = sorted({len(r.trials) for r in results.values()})
    return f"{settings.metric} ({where}; {'/'.join(map(str, trials))} trial{'s' * (trials != [1])})"
