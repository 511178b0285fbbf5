"""A search's MLflow record, built directly, for the promotion tests.

:func:`build_search_store` writes what ``mscm tune`` leaves behind for promotion to read (see
mscm.tune.tuner / mscm.tune.tracking): a parent run tagged ``mscm.search=<name>``, ``mscm.kind=search``;
one nested run per trial with ``ray_trial_id``, ``mscm.trial_status``, and its end record as the search
writes it (``RunLogger.log_best_checkpoint``: the ``best/<k>`` summary from the checkpoint's
metrics.json, the ``best_checkpoint`` path tag and the logged inference model); and a failed trial.
The checkpoints are tiny resnet18 MSCMNets on a
synthetic SYSU-layout dataset: one after a few SGD steps of the real loss, one untrained.

An end-to-end test that runs a real tiny search can replace this function (the ``store`` fixture of
tests/test_registry_promote.py) by anything that returns a :class:`SearchStore` for that search, if
the search: uses the SYSU layout (registered model mscm-sysu, protocols sysu-all + sysu-indoor) at
HEIGHT x WIDTH with a resnet18 (the smoke recipe at 64x32, model.alb_heads=4); leaves at least two
completed trials with best checkpoints whose full-protocol mAP differ; logs the trials' models (the
default); and ``notes[trial_id]["mAP"]`` holds each trial's ``best/mAP``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HEIGHT, WIDTH = 64, 32


@dataclass
class SearchStore:
    tracking_uri: str
    experiment: str
    search: str  # the search name (parent run tag mscm.search)
    parent_run_id: str
    trial_runs: dict[str, str]  # trial id -> MLflow run id (completed trials with a checkpoint)
    checkpoints: dict[str, Path]  # trial id -> best checkpoint folder
    data_root: Path  # the dataset the trials' configs point at
    cache_dir: Path
    failed_trial: str | None = None
    notes: dict = field(default_factory=dict)


def trial_config(data_root: Path, cache_dir: Path, tracking_uri: str, experiment: str):
    from mscm.config import load_run_config

    # The smoke recipe at 64x32: ALB embedding (64/16)*(32/16) = 8, so 4 heads.
    return load_run_config(
        "smoke",
        {
            "data.root": str(data_root),
            "data.cache_dir": str(cache_dir),
            "data.height": HEIGHT,
            "data.width": WIDTH,
            "model.alb_heads": 4,
            "eval.trials": 2,
            "eval.batch_size": 128,
            "tracking.tracking_uri": tracking_uri,
            "tracking.experiment": experiment,
        },
    )


def train_steps(model, cfg, dataset, steps: int, seed: int) -> None:
    """A few SGD steps of the real objective on the cached training images (no augmentation)."""
    from mscm.data.cache import ImageCache
    from mscm.data.imagenet import normalize_uint8
    from mscm.losses import MSCMLoss

    vis = ImageCache(dataset.train_visible, HEIGHT, WIDTH, cfg.data.cache_dir, progress=False)
    ir = ImageCache(dataset.train_infrared, HEIGHT, WIDTH, cfg.data.cache_dir, progress=False)
    vl = np.array([r.label for r in vis.records])
    il = np.array([r.label for r in ir.records])
    rng = np.random.default_rng(seed)
    loss_fn = MSCMLoss(cfg.loss, cfg.model.streams)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(steps):
        ids = rng.choice(dataset.num_classes, 4, replace=False)
        v = normalize_uint8(
            torch.from_numpy(vis.take([rng.choice(np.flatnonzero(vl == i)) for i in ids for _ in range(2)]))
        )
        x = normalize_uint8(
            torch.from_numpy(ir.take([rng.choice(np.flatnonzero(il == i)) for i in ids for _ in range(2)]))
        )
        views = [v, v.flip(3), x, x.flip(3)][: cfg.model.streams]
        labels = torch.from_numpy(np.repeat(ids, 2)).repeat(len(views))
        loss = loss_fn(model(*views), labels)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def build_search_store(
    root: Path, *, search: str = "tiny-search", identities: int = 16, train_steps_good: int = 2
) -> SearchStore:
    from mscm.checkpoint import save_checkpoint
    from mscm.data import read_dataset
    from mscm.data.synth import generate_atomic
    from mscm.eval import EvalRequest, evaluate_protocols, open_test_images
    from mscm.model import build_model
    from mscm.tracking.mlflow_run import RunLogger

    root = Path(root)
    data_root, cache_dir = root / "sysu", root / "cache"
    generate_atomic("sysu", data_root, identities, 0, HEIGHT, WIDTH, progress=False)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment = "promotion-tests"
    cfg = trial_config(data_root, cache_dir, tracking_uri, experiment)
    dataset = read_dataset("sysu", data_root)
    test_images = open_test_images(dataset, HEIGHT, WIDTH, cache_dir=str(cache_dir))
    request = EvalRequest(cfg.eval, protocols=(cfg.eval.protocol,))

    parent = RunLogger(tracking_uri, experiment, run_name=search, tags={"mscm.search": search, "mscm.kind": "search"})
    parent.log_config(cfg)
    store = SearchStore(tracking_uri, experiment, search, parent.run_id, {}, {}, data_root, cache_dir)
    for trial_id, seed, steps in (("trial_a", 0, train_steps_good), ("trial_b", 1, 0)):
        torch.manual_seed(seed)
        model = build_model(cfg.model, dataset.num_classes, HEIGHT, WIDTH)
        if steps:
            train_steps(model, cfg, dataset, steps, seed)
        model.eval()
        # What the trainer reports with a checkpoint: the test protocol's metrics at that epoch.
        metrics = evaluate_protocols(model, test_images, request)[cfg.eval.protocol].mean
        metrics["selection_score"] = metrics[cfg.eval.selection_metric]
        ckpt = save_checkpoint(
            root / "ray" / trial_id / "checkpoint_000001",
            cfg=cfg,
            num_classes=dataset.num_classes,
            model=model,
            epoch=1,
            metrics=metrics,
            train_state={"epoch": 1},
        )
        run = RunLogger(
            tracking_uri,
            experiment,
            run_name=f"train_driver_{trial_id}",
            parent_run_id=parent.run_id,
            tags={"ray_trial_id": trial_id, "trial_name": trial_id},
        )
        run.log_config(cfg)
        # The last report is worse than the best checkpoint: selection must not look at it.
        run.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=1)
        run.log_metrics({f"eval/{k}": v * 0.5 for k, v in metrics.items()}, step=2)
        tags = run.log_best_checkpoint(str(ckpt), step=2)
        assert "model_logging_error" not in tags, tags
        run.set_tags({**tags, "mscm.trial_status": "completed", "epochs_run": 2})
        run.end("FINISHED")
        store.trial_runs[trial_id], store.checkpoints[trial_id] = run.run_id, ckpt
        store.notes[trial_id] = metrics
    failed = RunLogger(
        tracking_uri,
        experiment,
        run_name="train_driver_trial_c",
        parent_run_id=parent.run_id,
        tags={"ray_trial_id": "trial_c"},
    )
    failed.log_metrics({"best/mAP": 1.0}, step=1)  # a failed trial never wins, whatever it logged
    failed.set_tags({"mscm.trial_status": "failed", "failure": "non-finite loss"})
    failed.end("FAILED")
    store.failed_trial = "trial_c"
    parent.end("FINISHED")
    return store
