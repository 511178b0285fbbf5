"""The GPU path in one command, needing torch alone (no Ray, MLflow or Optuna): for a lent GPU's
short lease. What each figure means and the targets: docs/gpu.md.

    PYTHONPATH=platform python3 bench/gpu.py                     # one CUDA device, about 5 minutes
    PYTHONPATH=platform python3 bench/gpu.py --out gpu.json      # also the figures as JSON
    PYTHONPATH=platform python3 bench/gpu.py --device cpu --smoke   # the same code paths, tiny sizes

Parts, each with its peak GPU memory:
1. train step: MSCMNet forward + backward (CE + QCT) + optimiser step at 384x192, batch 96 (4 streams x
   24), bf16 autocast + channels_last, eager and torch.compile, against torchvision ResNet-50 (CE only)
   at the same size and batch;
2. engine epoch: the training engine (identity sampler, image cache, device-side augmentations) on
   synthetic data it generates: images/s, steps/s with the finiteness flag read every step against
   every 50, and the share of the epoch the GPU is busy (kernel time from torch.profiler);
3. evaluation: feature extraction images/s in fp32 and bf16 and the largest mAP change between them;
4. ranking: 20,000 queries x 200,000 gallery x 2048 dims on the GPU, against the CPU path (timed on a
   slice of the queries and scaled).
Everything it writes goes to a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "platform"), str(HERE)]

import torch  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    backbone: str = "resnet50"
    height: int = 384
    width: int = 192
    per_stream: int = 24  # P x K = 6 x 4 per stream (the paper's batch: 96 trunk images)
    warmup: int = 5
    steps: int = 20
    compile_warmup: int = 3  # the first compiled steps include compilation
    compile_backend: str = "inductor"
    identities: int = 48  # synthetic identities of the engine epoch
    iterations: int = 40  # engine steps per timed epoch
    eval_identities: int = 24
    rank_queries: int = 20_000
    rank_gallery: int = 200_000
    rank_dim: int = 2048
    rank_cpu_queries: int = 200  # the CPU path runs on this many queries, scaled to all


SMOKE = Sizes(
    backbone="resnet18",
    height=64,
    width=32,
    per_stream=4,
    warmup=1,
    steps=2,
    compile_warmup=0,
    compile_backend="eager",  # dynamo's tracing without inductor's code generation (minutes on 2 CPUs)
    identities=8,
    iterations=3,
    eval_identities=8,
    rank_queries=300,
    rank_gallery=3_000,
    rank_dim=64,
    rank_cpu_queries=100,
)


class Memory:
    """Peak GPU memory of one part (None on the CPU)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(device: torch.device, sz: Sizes, mem: Memory) -> dict:
    """Part 1: images/s of MSCMNet eager and compiled and of the plain torchvision reference."""
    from train_step import mscm_step, reference_step, time_steps

    cuda = device.type == "cuda"
    out: dict = {}
    for label, compiled in (("eager", False), ("compiled", True)):
        mem.reset()
        backend = sz.compile_backend if compiled else None
        step = mscm_step(sz.backbone, sz.height, sz.width, sz.per_stream, device, cuda, compile_backend=backend)
        warm = sz.warmup + (sz.compile_warmup if compiled else 0)
        out[f"mscm_{label}_images_per_s"] = time_steps(step, warm, sz.steps, f"MSCMNet {label}")
        out[f"mscm_{label}_peak_gib"] = mem.peak_gib()
        images = step.images
        del step
    mem.reset()
    ref = reference_step(sz.backbone, sz.height, sz.width, images, device)
    out["reference_images_per_s"] = time_steps(ref, sz.warmup, sz.steps, f"torchvision {sz.backbone}")
    out["reference_peak_gib"] = mem.peak_gib()
    out["batch"] = images
    best = max(out["mscm_eager_images_per_s"], out["mscm_compiled_images_per_s"])
    out["ratio_to_reference"] = best / out["reference_images_per_s"]
    return out


def _engine_config(device: torch.device, sz: Sizes, iterations: int, check_every: int):
    from train_step import alb_heads

    from mscm.config import load_run_config

    cuda = device.type == "cuda"
    return load_run_config(
        "sysu",
        {
            "model.backbone": sz.backbone,
            "model.alb_heads": alb_heads(sz.height, sz.width),
            "data.height": sz.height,
            "data.width": sz.width,
            "data.synthetic.identities": sz.identities,
            "data.iterations_per_epoch": iterations,
            "train.use_gpu": cuda,
            "train.precision": "bf16" if cuda else "fp32",
            "train.finite_check_every": check_every,
            "schedule.warmup_epochs": 0,
            "schedule.milestones": [],
        },
    )


def _busy_share(prof, wall_us: float) -> float:
    """Union of the GPU kernels' time intervals over the profiled wall time."""
    spans = sorted(
        (e.time_range.start, e.time_range.end) for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
    )
    busy, end = 0.0, float("-inf")
    for a, b in spans:
        if b > end:
            busy += b - max(a, end)
            end = b
    return busy / wall_us if wall_us > 0 else 0.0


def engine_epoch(device: torch.device, sz: Sizes, mem: Memory) -> dict:
    """Part 2: per engine a warm-up epoch, then a timed one, with the finiteness flag read every step
    (as before issue 16) and every 50 (the default); then one profiled epoch for the GPU's busy share."""
    from mscm.train.engine import Engine

    out: dict = {}
    mem.reset()
    for check_every in (1, 50):  # the engine kept is the default one (every 50)
        engine = Engine(_engine_config(device, sz, sz.iterations, check_every), device=device)
        engine.train_epoch()  # cache, allocator and cudnn warm-up
        m = engine.train_epoch()
        out[f"check_every_{check_every}_images_per_s"] = m["perf/images_per_s"]
        out[f"check_every_{check_every}_steps_per_s"] = m["perf/steps"] / m["perf/epoch_time_s"]
    out["peak_gib"] = mem.peak_gib()
    out["gpu_busy_share"] = None
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            _sync(device)
            start = time.perf_counter()
            engine.train_epoch()
            _sync(device)
            wall = time.perf_counter() - start
        out["gpu_busy_share"] = _busy_share(prof, wall * 1e6)
    out["model"] = engine.module  # for the evaluation part (not printed)
    return out


def evaluation(device: torch.device, sz: Sizes, mem: Memory, model: torch.nn.Module) -> dict:
    """Part 3: extraction speed in fp32 and bf16 and the largest mAP difference on the same images."""
    from mscm.data import build_dataset
    from mscm.datasets.records import Modality
    from mscm.eval import EvalRequest, evaluate_protocols, open_test_images
    from mscm.eval.features import extract_features

    cfg = _engine_config(device, replace(sz, identities=sz.eval_identities), 1, 50)
    images = open_test_images(build_dataset(cfg.data, progress=False), sz.height, sz.width, progress=False)
    vis = images.of(Modality.VISIBLE)
    out: dict = {}
    mem.reset()
    means = {}
    for label, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        extract_features(model, vis, "visible", device=device, amp_dtype=amp, progress=False)  # warm-up
        _sync(device)
        start = time.perf_counter()
        extract_features(model, vis, "visible", device=device, amp_dtype=amp, progress=False)
        _sync(device)
        out[f"extract_{label}_images_per_s"] = len(vis) / (time.perf_counter() - start)
        request = EvalRequest(replace(cfg.eval, trials=3), device=device, amp_dtype=amp)
        means[label] = {k: r.mean["mAP"] for k, r in evaluate_protocols(model, images, request).items()}
    out["max_map_difference_points"] = 100 * max(abs(means["fp32"][k] - means["bf16"][k]) for k in means["fp32"])
    out["mAP_fp32"] = means["fp32"]
    out["peak_gib"] = mem.peak_gib()
    return out


def _ranking_inputs(sz: Sizes, device: torch.device):
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(sz.rank_queries, sz.rank_dim, device=device, generator=g), dim=1)
    gal = torch.nn.functional.normalize(torch.randn(sz.rank_gallery, sz.rank_dim, device=device, generator=g), dim=1)
    ids = max(1, sz.rank_gallery // 10)  # ten gallery images per identity
    rng = torch.Generator().manual_seed(1)
    g_pids = (torch.arange(sz.rank_gallery) % ids).numpy()
    q_pids = torch.randint(0, ids, (sz.rank_queries,), generator=rng).numpy()
    return q, gal, q_pids, g_pids


def ranking(device: torch.device, sz: Sizes, mem: Memory) -> dict:
    """Part 4: the whole ranking on the device; the CPU path on a slice of the queries, scaled."""
    from mscm.eval.metrics import score_features, summarize

    q, gal, q_pids, g_pids = _ranking_inputs(sz, device)
    mem.reset()
    _sync(device)
    start = time.perf_counter()
    scores = score_features(q, gal, q_pids, g_pids, on_device=True)
    _sync(device)
    out = {"device_s": time.perf_counter() - start, "peak_gib": mem.peak_gib()}
    n = min(sz.rank_cpu_queries, sz.rank_queries)
    qc, gc = q[:n].cpu(), gal.cpu()
    start = time.perf_counter()
    cpu = score_features(qc, gc, q_pids[:n], g_pids, on_device=False)
    out["cpu_s_scaled"] = (time.perf_counter() - start) * sz.rank_queries / n
    out["cpu_queries_timed"] = n
    out["same_first_ranks_on_the_slice"] = bool((cpu.first_rank == scores.first_rank[:n]).all())
    out["mAP"] = summarize(scores).mAP
    return out


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.3f}" if isinstance(v, float) else str(v)


def report(results: dict, sz: Sizes, device: torch.device) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\ndevice {name}, torch {torch.__version__}; sizes {asdict(sz)}")
    for part, figures in results.items():
        print(f"\n[{part}]")
        for k, v in figures.items():
            if k != "model":
                print(f"  {k:<38} {_fmt(v) if not isinstance(v, dict) else json.dumps(v)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code paths, not the speed")
    p.add_argument("--out", help="also write the figures to this JSON file")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device here; use --device cpu --smoke", file=sys.stderr)
        return 2
    sz = SMOKE if args.smoke else Sizes()
    torch.backends.cudnn.benchmark = device.type == "cuda"
    mem, results = Memory(device), {}
    with tempfile.TemporaryDirectory(prefix="mscm-gpu-bench-") as home:
        os.environ["MSCM_HOME"] = home  # synthetic data and caches go here, nothing into the checkout
        started = time.perf_counter()
        results["train step"] = train_step(device, sz, mem)
        results["engine epoch"] = engine_epoch(device, sz, mem)
        results["evaluation"] = evaluation(device, sz, mem, results["engine epoch"].pop("model"))
        results["ranking"] = ranking(device, sz, mem)
        results["total"] = {"wall_s": time.perf_counter() - started}
    report(results, sz, device)
    if args.out:
        Path(args.out).write_text(json.dumps({"sizes": asdict(sz), **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
