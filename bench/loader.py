"""Training-input throughput: images/s through the identity sampler, image reading and all four
augmentation streams, for the cached path (uint8 memmap rows) and the uncached path (decode + LANCZOS
resize of every image file, every step), at 384x192 (the paper's size) and a small size.

    PYTHONPATH=platform python bench/loader.py                     # synthetic SYSU-layout data
    PYTHONPATH=platform python bench/loader.py --dataset sysu --root /data/SYSU-MM01 --device cuda

"images/s" counts source images read (P*K visible + P*K infrared per step); "views/s" counts the
augmented tensors the trunk receives (4 per pair with the paper's four streams). The cache build is
timed separately: it happens once per dataset and resolution.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mscm.config.schema import AugmentConfig
from mscm.data import read_dataset
from mscm.data.augment import QuadAugment
from mscm.data.cache import ImageCache, load_image
from mscm.data.loader import TrainLoader
from mscm.data.sampler import IdentitySampler
from mscm.data.synth import ensure_synthetic


class DecodeEveryStep(Dataset):
    """The uncached path: a sampler step -> images decoded from their files."""

    def __init__(self, vis_paths: list[str], ir_paths: list[str], height: int, width: int):
        self.vis, self.ir, self.h, self.w = vis_paths, ir_paths, height, width

    def __len__(self) -> int:
        return 0

    def __getitem__(self, step):
        v, i, lab = step
        read = lambda paths, idx: torch.from_numpy(np.stack([load_image(paths[k], self.h, self.w) for k in idx]))  # noqa: E731
        return read(self.vis, v), read(self.ir, i), torch.from_numpy(lab)


def run(loader, augment: QuadAugment, device: torch.device, warmup: int) -> tuple[float, int, int]:
    """Seconds for the loader's steps after ``warmup`` steps, images read, views produced."""
    gen = torch.Generator(device=device).manual_seed(0)
    images = views = 0
    start = None
    for n, (vis, ir, _) in enumerate(loader):
        if n == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        out = augment(vis.to(device, non_blocking=True), ir.to(device, non_blocking=True), gen)
        if n >= warmup:
            images += vis.shape[0] + ir.shape[0]
            views += sum(v.shape[0] for v in out)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, images, views


def bench(args: argparse.Namespace, tmp: Path) -> None:
    device = torch.device(args.device)
    if args.root:
        root = Path(args.root)
    else:
        sh, sw = (int(v) for v in args.source_size.split("x"))
        t = time.perf_counter()
        root = ensure_synthetic(args.dataset, args.identities, 0, sh, sw, root=tmp / "data", progress=False)
        print(
            f"synthetic {args.dataset} data ({args.identities} ids, {sh}x{sw} files) in {time.perf_counter() - t:.1f} s"
        )
    ds = read_dataset(args.dataset, root)
    print(ds.summary())
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, loader workers {args.workers}, "
        f"P={args.P} K={args.K} ({2 * args.P * args.K} images/step), {args.steps} timed steps"
    )
    cache_dir = Path(args.cache_dir) if args.cache_dir else tmp / "cache"
    augment = QuadAugment(AugmentConfig(), streams=4)
    rows = []
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        t = time.perf_counter()
        vis, ir = (ImageCache(r, h, w, cache_dir, progress=False) for r in (ds.train_visible, ds.train_infrared))
        build = time.perf_counter() - t
        print(
            f"{h}x{w}: cache of {len(vis) + len(ir)} images built in {build:.1f} s "
            f"({(len(vis) + len(ir)) / build:.0f} images/s, {(vis.array.nbytes + ir.array.nbytes) / 2**20:.0f} MiB)"
        )
        pin = device.type == "cuda"
        for name in ("cached", "uncached"):
            sampler = IdentitySampler(
                [r.label for r in vis.records],
                [r.label for r in ir.records],
                args.P,
                args.K,
                seed=0,
                iterations_per_epoch=args.steps + args.warmup,
            )
            if name == "cached":  # the training loader itself
                loader = TrainLoader(vis, ir, sampler, workers=args.workers, pin_memory=pin)
            else:
                reader = DecodeEveryStep([r.path for r in vis.records], [r.path for r in ir.records], h, w)
                loader = DataLoader(reader, sampler=sampler, batch_size=None, num_workers=args.workers, pin_memory=pin)
            seconds, images, views = run(loader, augment, device, args.warmup)
            rows.append((f"{h}x{w}", name, images / seconds, views / seconds, 1000 * seconds / args.steps))
    print(f"\n{'size':>8}  {'path':>8}  {'images/s':>9}  {'views/s':>9}  {'ms/step':>8}")
    for size, name, ips, vps, ms in rows:
        print(f"{size:>8}  {name:>8}  {ips:9.0f}  {vps:9.0f}  {ms:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="sysu", choices=["sysu", "regdb", "llcm"])
    ap.add_argument("--root", default=None, help="dataset folder; default: synthetic data in that layout")
    ap.add_argument("--identities", type=int, default=32, help="synthetic identities")
    ap.add_argument("--source-size", default="256x128", help="HxW of the synthetic image files")
    ap.add_argument("--sizes", default="384x192,128x64", help="comma-separated HxW training resolutions")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("-P", type=int, default=6)
    ap.add_argument("-K", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dir", default=None, help="default: a temporary folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mscm-bench-loader-"))
    try:
        bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
