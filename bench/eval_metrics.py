"""Speed and memory of the evaluation metrics (feature extraction excluded), against the
straightforward per-query loop of mscm.eval.reference on the same inputs.

1. SYSU-MM01 all-search, single-shot, 10 trials, at the real test-set shape: 96 ids, 3,803 infrared
   queries (cams 3 and 6), 6,775 visible test images whose (id, camera) folders give 301-image
   single-shot galleries. Features are random (L2-normalised, 2048-d). Timed: ``evaluate_protocol``
   (gallery draws, camera rule, one shared distance matrix, 10 x CMC/mAP/mINP), and 10 x
   ``evaluate_features`` on each trial's query/gallery features (ranking only). Reference: 10 x
   distance matrix + ``reference_metrics`` with the camera-rule mask.
2. Large gallery: 20,000 queries x 200,000 gallery features (2048-d), ranked in query blocks under a
   memory budget. Timed: ``score_features`` + ``summarize``; memory: peak process RSS while ranking
   (sampled every 5 ms), minus the RSS just before (the features themselves), and ru_maxrss.
   Reference: the per-query loop on the first ``--reference-queries`` queries (distances computed the
   same way), extrapolated linearly to all queries (said so in the output).

    PYTHONPATH=platform python bench/eval_metrics.py
    PYTHONPATH=platform python bench/eval_metrics.py --skip-large          # SYSU figures only
    PYTHONPATH=platform python bench/eval_metrics.py --device cuda         # rank on a GPU
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import numpy as np
import psutil
import torch
import torch.nn.functional as F

from mscm.datasets import get_protocol
from mscm.datasets.records import ImageRecord, Modality, VIReIDDataset
from mscm.eval.metrics import DEFAULT_MEMORY_BUDGET, distances, removal_mask, score_distmat, score_features, summarize
from mscm.eval.protocols import GalleryFolders, candidates, trial_split
from mscm.eval.reference import reference_metrics
from mscm.eval.runner import evaluate_protocol

GiB = 2**30

# SYSU-MM01 test split (docs/protocols.md): 96 ids, 3,803 infrared queries, 301 single-shot
# all-search gallery folders; 6,775 visible test images.
SYSU_IDS, SYSU_QUERIES, SYSU_FOLDERS, SYSU_VISIBLE = 96, 3803, 301, 6775


def sysu_shaped(rng: np.random.Generator) -> VIReIDDataset:
    """Test records with SYSU-MM01's test shape (paths are names only; nothing is read)."""
    pids = np.sort(rng.choice(np.arange(1, 534), SYSU_IDS, replace=False))
    pairs = [(int(p), c) for p in pids for c in (1, 2, 4, 5)]
    folders = [pairs[i] for i in sorted(rng.choice(len(pairs), SYSU_FOLDERS, replace=False))]
    sizes = rng.multinomial(SYSU_VISIBLE - SYSU_FOLDERS, np.full(SYSU_FOLDERS, 1 / SYSU_FOLDERS)) + 1
    vis = [
        ImageRecord(f"cam{c}/{p:04d}/{k + 1:04d}.jpg", p, c, Modality.VISIBLE)
        for (p, c), n in zip(folders, sizes)
        for k in range(n)
    ]
    ir_pairs = [(int(p), c) for p in pids for c in (3, 6)]
    ir_sizes = rng.multinomial(SYSU_QUERIES - len(ir_pairs), np.full(len(ir_pairs), 1 / len(ir_pairs))) + 1
    ir = [
        ImageRecord(f"cam{c}/{p:04d}/{k + 1:04d}.jpg", p, c, Modality.INFRARED)
        for (p, c), n in zip(ir_pairs, ir_sizes)
        for k in range(n)
    ]
    return VIReIDDataset("sysu", "(bench)", [], [], vis, ir, 0)


def features_for(pids: np.ndarray, centres: torch.Tensor, rng: np.random.Generator, noise: float) -> torch.Tensor:
    """Random unit features around their identity's centre (so rankings are not uniform noise)."""
    x = centres[torch.from_numpy(pids)] + noise * torch.from_numpy(
        rng.standard_normal((len(pids), centres.shape[1]), dtype=np.float32)
    )
    return F.normalize(x, dim=1)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_sysu(dim: int, repeats: int, device: str) -> None:
    rng = np.random.default_rng(0)
    ds = sysu_shaped(rng)
    spec = get_protocol("sysu-all")
    pool = candidates(spec, ds)
    q_pids = np.array([ds.test_infrared[i].pid for i in pool.query])
    q_cams = np.array([ds.test_infrared[i].camid for i in pool.query])
    g_pids_all = np.array([r.pid for r in ds.test_visible])
    g_cams_all = np.array([r.camid for r in ds.test_visible])
    centres = torch.from_numpy(rng.standard_normal((534, dim), dtype=np.float32))
    # Noise 6: a ranking about as good as a trained model's (rank-1 well below 100%).
    qf, gf = (features_for(p, centres, rng, 6.0).to(device) for p in (q_pids, g_pids_all[pool.gallery]))
    g_row = np.full(len(ds.test_visible), -1)
    g_row[pool.gallery] = np.arange(len(pool.gallery))
    folders = GalleryFolders(ds.test_visible, spec.gallery_cams)
    splits = [trial_split(spec, ds, t, "single", pool, folders) for t in range(10)]
    union = np.unique(np.concatenate([s.gallery for s in splits]))
    sizes = sorted({len(s.gallery) for s in splits})
    print(
        f"SYSU-MM01 all-search single-shot, 10 trials: {len(pool.query)} queries x {sizes} gallery "
        f"(union of the 10 draws: {len(union)}), dim {dim}, device {device}"
    )

    def shared_distances():
        return distances(qf, gf[g_row[union]]).cpu().numpy()

    t_dist, shared = best_of(shared_distances, repeats)

    def metrics_only():  # what evaluate_protocol does after the distance product
        out = []
        for t in range(10):
            s = trial_split(spec, ds, t, "single", pool, folders)
            scores = score_distmat(
                shared,
                q_pids,
                g_pids_all[s.gallery],
                q_cams=q_cams,
                g_cams=g_cams_all[s.gallery],
                removal="sysu",
                columns=np.searchsorted(union, s.gallery),
            )
            out.append(summarize(scores, cmc="dedup"))
        return out

    def protocol():
        return evaluate_protocol("sysu-all", ds, qf, gf, trials=10, pool=pool)

    per_trial = [np.ascontiguousarray(shared[:, np.searchsorted(union, s.gallery)]) for s in splits]
    masks = [removal_mask("sysu", q_pids, q_cams, g_pids_all[s.gallery], g_cams_all[s.gallery]) for s in splits]

    def reference():
        return [reference_metrics(d, q_pids, g_pids_all[s.gallery], m) for d, s, m in zip(per_trial, splits, masks)]

    t_metrics, fast = best_of(metrics_only, repeats)
    t_proto, res = best_of(protocol, repeats)
    t_ref, ref = best_of(reference, 1)
    for a, b in zip(fast, ref):  # same numbers, or the timing comparison means nothing
        np.testing.assert_allclose(list(a.as_dict().values()), list(b.as_dict().values()), rtol=1e-9)
    print(
        f"  metrics, 10 trials (draws, camera rule, ranking, CMC/mAP/mINP) from the distances: "
        f"{t_metrics:.3f} s  (best of {repeats}; target < 0.5 s)"
    )
    print(
        f"  distance matrix, queries x union of the draws (one {len(pool.query)}x{len(union)}x{dim} product): "
        f"{t_dist:.3f} s"
    )
    print(
        f"  evaluate_protocol end to end from features (both of the above): {t_proto:.3f} s  "
        f"mean R1 {100 * res.mean['rank1']:.2f}%  mAP {100 * res.mean['mAP']:.2f}%  mINP {100 * res.mean['mINP']:.2f}%"
    )
    print(
        f"  reference per-query loop on the same 10 distance matrices: {t_ref:.3f} s  "
        f"-> ratio reference / metrics {t_ref / t_metrics:.1f}x"
    )


class PeakRSS:
    """Samples the process RSS in a thread; ``peak`` is the largest value seen while running."""

    def __init__(self, interval: float = 0.005):
        self.proc, self.interval = psutil.Process(), interval
        self.peak, self._stop = 0, threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def bench_large(nq: int, ng: int, dim: int, ids: int, ref_queries: int, budget: int, device: str) -> None:
    print(
        f"\nLarge gallery: {nq} queries x {ng} gallery, dim {dim}, {ids} identities, float32, device {device}, "
        f"block memory budget {budget / 2**20:.0f} MiB"
    )
    rng = np.random.default_rng(1)
    g_pids = rng.integers(0, ids, ng)
    q_pids = rng.integers(0, ids, nq)
    g_cams = rng.integers(1, 7, ng)
    q_cams = rng.integers(1, 7, nq)
    t0 = time.perf_counter()
    # Features made in pieces so generating them never holds a second full copy.
    centres = torch.randn(ids, dim, generator=torch.Generator().manual_seed(0))

    def make(pids: np.ndarray, centres: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(pids), dim)
        for lo in range(0, len(pids), 20000):
            p = torch.from_numpy(pids[lo : lo + 20000])
            out[lo : lo + 20000] = F.normalize(centres[p] + 3.5 * torch.randn(len(p), dim), dim=1)
        return out.to(device)

    gf, qf = make(g_pids, centres), make(q_pids, centres)
    del centres
    feat_bytes = (gf.numel() + qf.numel()) * 4
    print(f"  features generated in {time.perf_counter() - t0:.1f} s ({feat_bytes / GiB:.2f} GiB)")

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        scores = score_features(
            qf,
            gf,
            q_pids,
            g_pids,
            q_cams=q_cams,
            g_cams=g_cams,
            removal="same-camera",
            memory_budget=budget,
            progress=True,
        )
        metrics = summarize(scores, cmc="dedup")
        if device == "cuda":
            torch.cuda.synchronize()
        t_rank = time.perf_counter() - t0
    print(
        f"  chunked ranking + metrics: {t_rank:.1f} s  (R1 {100 * metrics.rank(1):.2f}%, mAP {100 * metrics.mAP:.2f}%)"
    )
    print(
        f"  memory: RSS before ranking {mem.start / GiB:.2f} GiB (features + runtime), peak during ranking "
        f"{mem.peak / GiB:.2f} GiB, extra for ranking {(mem.peak - mem.start) / GiB:.2f} GiB; "
        f"process ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (target < 4 GiB)"
    )
    if device == "cuda":
        print(f"  GPU peak allocated during ranking: {torch.cuda.max_memory_allocated() / GiB:.2f} GiB")

    # Reference on a subset, extrapolated; the distance product and the ranking timed apart (the
    # product is the same work in both and dominates on a CPU).
    sub = slice(0, ref_queries)
    t0 = time.perf_counter()
    d = distances(qf[sub], gf).cpu().numpy()
    t_dist_sub = time.perf_counter() - t0
    removed = removal_mask("same-camera", q_pids[sub], q_cams[sub], g_pids, g_cams)
    t0 = time.perf_counter()
    ref = reference_metrics(d, q_pids[sub], g_pids, removed)
    t_loop_sub = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast_sub = summarize(
        score_distmat(d, q_pids[sub], g_pids, q_cams=q_cams[sub], g_cams=g_cams, removal="same-camera", overwrite=True),
        cmc="dedup",
    )
    t_fast_sub = time.perf_counter() - t0
    np.testing.assert_allclose(list(fast_sub.as_dict().values()), list(ref.as_dict().values()), rtol=1e-9)
    scale = nq / ref_queries
    t_ref = (t_dist_sub + t_loop_sub) * scale
    print(
        f"  on the first {ref_queries} queries: distance product {t_dist_sub:.1f} s, ranking + metrics "
        f"{t_fast_sub:.2f} s, reference per-query loop {t_loop_sub:.1f} s (same numbers)"
    )
    print(
        f"  reference (product + loop) extrapolated linearly to {nq} queries: {t_ref:.0f} s (not measured in full); "
        f"ratio reference / chunked: {t_ref / t_rank:.1f}x; ranking alone, loop / vectorised: "
        f"{t_loop_sub / t_fast_sub:.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5, help="SYSU timings: best of this many runs")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--large-queries", type=int, default=20000)
    ap.add_argument("--large-gallery", type=int, default=200000)
    ap.add_argument("--large-ids", type=int, default=10000)
    ap.add_argument("--reference-queries", type=int, default=200)
    ap.add_argument("--memory-budget-mib", type=int, default=DEFAULT_MEMORY_BUDGET // 2**20)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {psutil.cpu_count()} CPUs")
    bench_sysu(args.dim, args.repeats, args.device)
    if not args.skip_large:
        bench_large(
            args.large_queries,
            args.large_gallery,
            args.dim,
            args.large_ids,
            args.reference_queries,
            args.memory_budget_mib * 2**20,
            args.device,
        )


if __name__ == "__main__":
    main()
