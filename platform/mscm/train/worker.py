"""The Ray Train worker loop: an :class:`~mscm.train.engine.Engine` per DDP rank, a report (with a
checkpoint) every epoch, evaluation every ``eval.every_n_epochs`` and the full protocol at the end.

Every rank calls ``ray.train.report`` once per epoch (V2 reports are barriers, docs/stack.md 2.6); rank 0
writes the checkpoint and evaluates. After a worker loss Ray Train restarts the group and
``ray.train.get_checkpoint()`` resumes at the next epoch, so no finished epoch is lost or repeated.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch

from ..checkpoint import load_model_payload, load_train_state, save_checkpoint
from ..config import RunConfig, from_dict
from ..model.cost import inference_latency_ms, inference_parameters
from .engine import Engine, NonFiniteLossError
from .failures import quiet_expected_errors
from .node_metrics import NodeSampler, gather_node_metrics, node_label
from .report_keys import CMC_FILE, EVAL_FILE, FAILURE_KEY, RANKED_FILE, SCORE_KEY


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    loop_start = time.time()  # Ray's share of start-up ends here (bench/ray_overhead.py)
    quiet_expected_errors()
    cfg = from_dict(RunConfig, loop_config["run"], source="train_loop_config.run")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    engine = Engine(
        cfg,
        rank=rank,
        world_size=world,
        device=device,
        wrap_model=lambda m: ray.train.torch.prepare_model(m, move_to_device=False),
        progress=rank == 0,
    )
    resumed_from = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # a restarted worker group (or a restored run): continue after its epoch
        with checkpoint.as_directory() as d:
            payload = load_model_payload(d)
            engine.load_train_state(load_train_state(d), payload["state_dict"])
        resumed_from = engine.epoch
        if loop_config.get("report_resumed"):
            report_resumed_epoch(checkpoint, payload, rank)
        if engine.epoch >= cfg.schedule.epochs:
            return
    sampler = None
    if cfg.tracking.system_metrics:
        gpu = (device.index or 0) if device.type == "cuda" else None
        sampler = NodeSampler(gpu, cfg.tracking.system_metrics_interval_s).start()
    label = node_label(ray.get_runtime_context().get_node_id())
    try:
        run_epochs(
            engine,
            node_metrics=lambda: gather_node_metrics(sampler, label, world),
            extra_metrics={
                **inference_cost(engine),
                "dataset/num_classes": engine.num_classes,
                "dist/world_size": world,
                "dist/num_nodes": _count_nodes(world),
                "train/resumed_from_epoch": resumed_from,
                "perf/loop_start_wall": loop_start,
                **loop_config.get("report_extra", {}),
            },
        )
    finally:
        if sampler is not None:
            sampler.stop()


def report_resumed_epoch(checkpoint, payload: dict[str, Any], rank: int) -> None:
    """A search trial resumed from a checkpoint reports that checkpoint's epoch again, with it: an
    interrupted search stops Tune before the trial stops, so the trial's last epoch may have been
    checkpointed without its report reaching Tune. A repeat is harmless: the MLflow callback keeps one
    copy of an epoch (mscm.tracking.spool), ASHA and the Optuna feedback count epochs, not reports."""
    epoch = int(payload["epoch"])
    metrics = {**payload.get("metrics", {}), "epoch": epoch, "train/resumed_from_epoch": epoch}
    ray.train.report(metrics, checkpoint=checkpoint if rank == 0 else None)


def inference_cost(engine: Engine) -> dict[str, float]:
    """``params_m`` and ``latency_ms`` (median batch-1 embedding time on this worker's device), measured
    once by rank 0: the objectives a multi-objective search can trade against mAP. Only rank 0's
    reports reach Tune and MLflow."""
    if engine.rank != 0:
        return {}
    cfg = engine.cfg
    out = {"params_m": inference_parameters(engine.module) / 1e6}
    if cfg.eval.latency_runs:
        out["latency_ms"] = inference_latency_ms(
            engine.module,
            cfg.data.height,
            cfg.data.width,
            device=engine.device,
            runs=cfg.eval.latency_runs,
            memory_format=engine.memory_format,
            autocast_dtype=engine.amp_dtype,
        )
    return out


def _count_nodes(world: int) -> int:
    """Distinct Ray nodes of the worker group, by node id (a node rank goes by IP, which simulated
    multi-node clusters on one host share)."""
    if world == 1:
        return 1
    import ray
    import torch.distributed as dist

    ids: list[str | None] = [None] * world
    dist.all_gather_object(ids, ray.get_runtime_context().get_node_id())
    return len(set(ids))


def run_epochs(
    engine: Engine,
    extra_metrics: dict[str, float] | None = None,
    node_metrics: Callable[[], dict[str, float]] = dict,
) -> None:
    """``node_metrics``: called by every rank once per epoch, after its training (a collective)."""
    cfg = engine.cfg
    total = cfg.schedule.epochs
    last_report_s: float | None = None
    while engine.epoch < total:
        try:
            metrics = engine.train_epoch()
        except NonFiniteLossError as e:
            _report_failure(engine, str(e))
            return
        metrics.update(node_metrics())
        metrics["epoch"] = engine.epoch
        metrics.update(extra_metrics or {})
        final = engine.epoch == total
        due = final or engine.epoch % cfg.eval.every_n_epochs == 0
        score = -math.inf  # epochs without evaluation never outrank an evaluated one
        result = None
        if due and engine.rank == 0:
            start = time.perf_counter()
            result = engine.evaluate(trials=cfg.eval.trials if final else cfg.eval.trials_during_training)
            engine.last_eval = {**result.summary(), "eval/epoch": engine.epoch}  # flat: mAP, rank1, mAP_std..
            metrics["perf/eval_time_s"] = time.perf_counter() - start
            score = engine.last_eval[cfg.eval.selection_metric]
            metrics["best/is_best"] = float(engine.update_best(score, {**metrics, **engine.last_eval}))
        # Every report carries the latest evaluation (Tune's schedulers and searchers read the metric in
        # every result); eval/epoch says which epoch it comes from, the selection score is fresh only.
        metrics.update(engine.last_eval)
        metrics[SCORE_KEY] = score
        metrics["best/epoch"] = engine.best["epoch"] or 0
        metrics["best/score"] = engine.best["score"]
        if engine.first_step_wall is not None:
            metrics["perf/first_step_wall"] = engine.first_step_wall
        if last_report_s is not None:  # checkpoint + report of the previous epoch
            metrics["perf/last_report_s"] = last_report_s
        report_start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if engine.rank == 0:
                save_checkpoint(
                    tmp,
                    cfg=cfg,
                    num_classes=engine.num_classes,
                    model=engine.model,
                    epoch=engine.epoch,
                    metrics=metrics,
                    train_state=engine.train_state(),
                )
                if result is not None:
                    Path(tmp, EVAL_FILE).write_text(json.dumps(result.to_dict(), indent=2))
                    result.plot_cmc(Path(tmp, CMC_FILE), label=f"{cfg.name} epoch {engine.epoch}")
                    engine.write_ranked_lists(Path(tmp, RANKED_FILE))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)
        last_report_s = time.perf_counter() - report_start


def _report_failure(engine: Engine, message: str) -> None:
    """End the run gracefully with the failure in its last report.

    Raising would make Ray Train restart the worker group from the last checkpoint, which replays the
    same steps into the same non-finite loss; instead every rank (they all saw it: the finiteness
    check is all-reduced) reports once, and the driver turns the report into an error.
    """
    metrics = {"epoch": engine.epoch, FAILURE_KEY: message, SCORE_KEY: -math.inf}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if engine.rank == 0:
            # Weights are still finite: the check runs before backward, so nothing non-finite was applied.
            save_checkpoint(
                tmp,
                cfg=engine.cfg,
                num_classes=engine.num_classes,
                model=engine.model,
                epoch=engine.epoch,
                metrics=metrics,
            )
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=ckpt)


__all__ = ["train_loop_per_worker", "run_epochs"]
