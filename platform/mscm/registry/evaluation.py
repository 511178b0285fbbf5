"""The evaluation a promotion runs: every protocol of a dataset (SYSU both search modes, RegDB and
LLCM both directions), all trials, on the dataset's real test split, through the one evaluation
path (:func:`mscm.eval.full.evaluate_protocols`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import DataConfig, RunConfig
from ..data import build_dataset
from ..data.fingerprint import data_fingerprint
from ..datasets import VIReIDDataset, get_dataset
from ..eval import EvalRequest, EvalResult, TestImages, evaluate_protocols, open_test_images
from ..eval.features import eval_amp_dtype
from .settings import PromotionSettings


@dataclass
class EvalData:
    """The test split of one dataset, and its decoded images at each model input size asked for."""

    config: DataConfig
    dataset: VIReIDDataset
    fingerprint: str
    _images: dict[tuple[int, int], TestImages] = field(default_factory=dict, repr=False)

    @property
    def protocols(self) -> tuple[str, ...]:
        return get_dataset(self.dataset.name).protocol_names

    def images(self, height: int, width: int, progress: bool = False) -> TestImages:
        key = (height, width)
        if key not in self._images:
            cfg = self.config
            self._images[key] = open_test_images(
                self.dataset, height, width, cache_dir=cfg.cache_dir, skip_corrupt=cfg.skip_corrupt, progress=progress
            )
        return self._images[key]


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
    its input size and test-time feature; ``settings``: the promotion's trials and gallery mode)."""
    if cfg.data.dataset != data.dataset.name:
        raise ValueError(f"a {cfg.data.dataset} model cannot be evaluated on {data.dataset.name} data")
    request = EvalRequest(
        dataclasses.replace(cfg.eval, trials=settings.trials, gallery_mode=settings.gallery_mode),
        split=cfg.data.regdb_trial,
        device=device,
        amp_dtype=eval_amp_dtype(cfg.eval, device),
        progress=progress,
    )
    return evaluate_protocols(model, data.images(cfg.data.height, cfg.data.width, progress), request)


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
