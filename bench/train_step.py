"""Training-step throughput of MSCMNet: forward + backward (CE + QCT) + SGD step, in images/s through the trunk.

Cases: resnet50 at 384x192 with the paper's batch (4 streams x 24 = 96 images, P=6 x K=4, 395 classes) and
resnet18 at a small size. On CUDA the step runs under bf16 autocast with channels_last (the training
recipe's GPU settings), and the plain torchvision ResNet of the same backbone (same size and batch, CE
only; ResNet-50 for the paper case) is timed as the reference; the ratio MSCMNet / reference is printed.

    python bench/train_step.py                                   # CPU: both cases, 1 warm-up + 2 timed steps
    python bench/train_step.py --device cuda --warmup 5 --steps 20
    python bench/train_step.py --cases resnet18@128x64 --steps 5
    python bench/train_step.py --full-epoch smoke --iterations 20       # a whole epoch of the training engine

The full-epoch variant runs one epoch of mscm.train.engine (identity sampler, cached images, device-side
augmentations, CE + QCT, the recipe's optimiser) on the recipe's data, synthetic unless data.root is
set, and prints the epoch's images/s: the figure every training epoch reports as perf/images_per_s.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from mscm.config import LossConfig, ModelConfig, OptimConfig  # noqa: E402
from mscm.losses import MSCMLoss  # noqa: E402
from mscm.model import build_model  # noqa: E402
from mscm.train.optim import build_optimizer  # noqa: E402

NUM_CLASSES = 395  # SYSU-MM01 (docs/model.md, "The network")
IDENTITIES, INSTANCES = 6, 4  # P x K per modality (section 5): 24 per stream


def parse_case(text: str) -> tuple[str, int, int]:
    try:
        backbone, size = text.split("@")
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"case must look like resnet50@384x192, got {text!r}") from None
    return backbone, h, w


def alb_heads(h: int, w: int) -> int:
    """The paper's head dimension 9 (288 / 32 heads at 384x192) where it divides the ALB embedding,
    else head dimension 8 (as the smoke recipe: 32 / 4 at 128x64)."""
    embed = (h // 16) * (w // 16)
    if embed % 9 == 0:
        return embed // 9
    return embed // 8 if embed % 8 == 0 else 1


class Step:
    """One timed training step of some model; ``images`` = images through the network per step."""

    def __init__(self, model, views, labels, loss_fn, optimizer, amp: bool, device: torch.device):
        self.model, self.views, self.labels = model, views, labels
        self.loss_fn, self.optimizer, self.amp, self.device = loss_fn, optimizer, amp, device
        self.images = sum(v.shape[0] for v in views)

    def __call__(self) -> torch.Tensor:
        """One step; the loss stays on the device (no host read, so the GPU can run ahead)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(*self.views)
        loss = self.loss_fn(out, self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def mscm_step(
    backbone: str, h: int, w: int, per_stream: int, device: torch.device, cuda: bool, compile_backend: str | None = None
) -> Step:
    """``compile_backend``: wrap the model in torch.compile with this backend ("inductor", ...)."""
    cfg = ModelConfig(backbone=backbone, alb_heads=alb_heads(h, w))
    model = build_model(cfg, NUM_CLASSES, h, w).to(device).train()
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = build_optimizer(model, OptimConfig())
    if compile_backend:
        model = torch.compile(model, backend=compile_backend)
    g = torch.Generator().manual_seed(0)
    views = [
        torch.randn(per_stream, 3, h, w, generator=g).to(device).contiguous(memory_format=fmt)
        for _ in range(cfg.streams)
    ]
    ids = torch.randperm(NUM_CLASSES, generator=g)[:IDENTITIES]
    per = ids[torch.arange(per_stream) % IDENTITIES]  # P identities, K images each (24 = 6 x 4)
    labels = per.repeat(cfg.streams).to(device)
    criterion = MSCMLoss(LossConfig(), cfg.streams)
    return Step(
        model,
        views,
        labels,
        lambda out, y: criterion(out, y)["total"],
        optimizer,
        cuda,
        device,
    )


def reference_step(backbone: str, h: int, w: int, batch: int, device: torch.device) -> Step:
    import torchvision.models

    model = (
        getattr(torchvision.models, backbone)(weights=None, num_classes=NUM_CLASSES)
        .to(device)
        .train()
        .to(memory_format=torch.channels_last)
    )
    x = torch.randn(batch, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return Step(model, [x], y, F.cross_entropy, opt, True, device)


def time_steps(step: Step, warmup: int, steps: int, label: str) -> float:
    """Images per second over ``steps`` timed steps after ``warmup`` untimed ones."""
    sync = torch.cuda.synchronize if step.device.type == "cuda" else (lambda: None)
    for _ in tqdm(range(warmup), desc=f"{label} warm-up", leave=False):
        step()
    sync()
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"{label} timed", leave=False):
        loss = step()
    sync()
    elapsed = time.perf_counter() - start
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(f"{label}: non-finite loss {float(loss)}")
    return step.images * steps / elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--cases",
        nargs="+",
        type=parse_case,
        default=[("resnet50", 384, 192), ("resnet18", 128, 64)],
        metavar="BACKBONE@HxW",
        help="default: resnet50@384x192 resnet18@128x64",
    )
    p.add_argument("--per-stream", type=int, default=IDENTITIES * INSTANCES, help="images per stream (paper: 24)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--no-reference", action="store_true", help="CUDA: skip the plain torchvision ResNet reference")
    p.add_argument(
        "--full-epoch", metavar="RECIPE", help="time one epoch of the training engine on this recipe instead"
    )
    p.add_argument("--iterations", type=int, default=20, help="--full-epoch: steps in the epoch")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="--full-epoch: config overrides")
    args = p.parse_args()
    if args.full_epoch:
        return full_epoch(args)

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    device = torch.device(args.device)
    if cuda:
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}, bf16 autocast, channels_last")
    else:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(
            f"device: CPU, {torch.get_num_threads()} torch threads, fp32; load average {load} "
            f"(other processes on this machine slow the figures down)"
        )
    print(f"step = forward + backward (CE + QCT) + SGD; {args.warmup} warm-up + {args.steps} timed steps")

    for backbone, h, w in args.cases:
        step = mscm_step(backbone, h, w, args.per_stream, device, cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        ips = time_steps(step, args.warmup, args.steps, f"{backbone}@{h}x{w}")
        mem = (
            f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
            if cuda
            else f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
        )
        print(
            f"MSCMNet {backbone} {h}x{w}, batch {step.images} ({args.per_stream} x {len(step.views)} streams): "
            f"{ips:8.1f} images/s ({step.images / ips:.2f} s/step), {mem}"
        )
        images = step.images
        del step  # free its memory before the reference runs
        if cuda and not args.no_reference:
            ref = reference_step(backbone, h, w, images, device)
            ref_ips = time_steps(ref, args.warmup, args.steps, f"torchvision {backbone}@{h}x{w}")
            print(
                f"  reference torchvision {backbone} {h}x{w}, batch {ref.images}, CE: {ref_ips:8.1f} images/s; "
                f"MSCMNet / reference = {ips / ref_ips:.2f}"
            )
            del ref
    return 0


def full_epoch(args: argparse.Namespace) -> int:
    """One warm-up epoch (cache build, allocator warm-up), then one timed epoch of the training engine."""
    from mscm.cli._common import parse_overrides
    from mscm.config import load_run_config
    from mscm.train.engine import Engine

    cuda = args.device == "cuda"
    values = {
        "data.iterations_per_epoch": args.iterations,
        "train.use_gpu": cuda,
        "schedule.warmup_epochs": 0,
        "schedule.milestones": [],
    }
    if cuda:
        values["train.precision"] = "bf16"
    values.update(parse_overrides(args.set))
    cfg = load_run_config(args.full_epoch, values)
    engine = Engine(cfg, device=args.device, progress=True)
    engine.train_epoch()
    m = engine.train_epoch()
    batch = cfg.data.identities_per_batch * cfg.data.instances_per_identity * cfg.model.streams
    print(
        f"full epoch, {cfg.name}: {cfg.model.backbone} at {cfg.data.height}x{cfg.data.width}, "
        f"{int(m['perf/steps'])} steps of {batch} trunk images, {args.device}: "
        f"{m['perf/images_per_s']:.1f} images/s ({m['perf/epoch_time_s']:.1f} s/epoch, loss {m['loss/total']:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
