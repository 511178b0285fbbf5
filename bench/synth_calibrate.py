"""Is the synthetic dataset learnable but not trivial? Cross-modal mAP (infrared query -> visible
gallery, all test images, cosine on global-average-pooled features) of a randomly initialised
torchvision ResNet-18, then of the same network after a short cross-entropy fine-tune on the
synthetic training identities (CPU).

    PYTHONPATH=platform python bench/synth_calibrate.py --layout sysu --identities 100 --minutes 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from mscm.data import read_dataset
from mscm.data.cache import ImageCache
from mscm.data.imagenet import normalize_uint8
from mscm.data.synth import ensure_synthetic


def cosine_map(q: torch.Tensor, qp: np.ndarray, g: torch.Tensor, gp: np.ndarray) -> float:
    sim = F.normalize(q, dim=1) @ F.normalize(g, dim=1).T
    order = torch.argsort(-sim, dim=1).numpy()
    aps = []
    for i in range(len(qp)):
        match = gp[order[i]] == qp[i]
        if not match.any():
            continue
        hits = np.cumsum(match)
        aps.append(float((hits[match] / (np.flatnonzero(match) + 1)).mean()))
    return 100 * float(np.mean(aps))


@torch.no_grad()
def embed(model: torch.nn.Module, images: np.ndarray, batch: int = 128) -> torch.Tensor:
    model.eval()
    feats = [model(normalize_uint8(torch.from_numpy(images[i:i + batch]))) for i in range(0, len(images), batch)]
    return torch.cat(feats)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", default="sysu", choices=["sysu", "regdb", "llcm"])
    ap.add_argument("--identities", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--root", default=None, help="existing synthetic dataset (default: generate in a temp dir)")
    args = ap.parse_args()
    torch.manual_seed(0)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp()) / "ds"
    t = time.perf_counter()
    ensure_synthetic(args.layout, args.identities, args.seed, 128, 64, root=root, progress=False)
    print(f"dataset ready in {time.perf_counter() - t:.1f} s at {root}")
    ds = read_dataset(args.layout, root)
    print(ds.summary())
    cache_dir = root / ".cache"
    tv, ti = (ImageCache(r, 128, 64, cache_dir, progress=False) for r in (ds.test_visible, ds.test_infrared))
    trv, tri = (ImageCache(r, 128, 64, cache_dir, progress=False) for r in (ds.train_visible, ds.train_infrared))
    qp, gp = np.array([r.pid for r in ti.records]), np.array([r.pid for r in tv.records])

    model = torchvision.models.resnet18(weights=None, num_classes=ds.num_classes)
    head = model.fc
    model.fc = torch.nn.Identity()
    before = cosine_map(embed(model, ti.array), qp, embed(model, tv.array), gp)
    print(f"untrained resnet18: IR->VIS mAP {before:.1f}%  ({len(qp)} queries, {len(gp)} gallery)")

    images = np.concatenate([trv.array, tri.array])
    labels = torch.tensor([r.label for r in trv.records + tri.records])
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.minutes * 60:
        model.train()
        idx = torch.randint(len(images), (64,), generator=gen)
        x = normalize_uint8(torch.from_numpy(images[idx.numpy()]))
        flip = torch.rand(64, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        loss = F.cross_entropy(head(model(x)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    after = cosine_map(embed(model, ti.array), qp, embed(model, tv.array), gp)
    print(f"after {steps} steps ({args.minutes:.1f} min, final CE {loss.item():.2f}): IR->VIS mAP {after:.1f}%")


if __name__ == "__main__":
    main()
