"""k-reciprocal re-ranking at SYSU-MM01's size: 3,803 infrared queries against a single-shot gallery (301
images) and a multi-shot one (3,010), 2,048-d features (random, L2-normalised: the cost does not depend on
the values). Prints the plain distance matrix's time, the re-ranked one's, and their ratio.

    python bench/rerank.py
    python bench/rerank.py --gallery 301 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import torch  # noqa: E402

from mscm.eval.metrics import distances  # noqa: E402
from mscm.eval.rerank import RerankSettings, rerank_distances  # noqa: E402

QUERIES = 3803  # SYSU-MM01's infrared test images (all-search queries)


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gallery", type=int, action="append", help="gallery sizes (default 301 and 3010)")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    print(f"{QUERIES} queries, {args.dim}-d, k1 20 / k2 6 / lambda 0.3, {torch.get_num_threads()} threads")
    print(f"{'gallery':>8} {'plain s':>9} {'re-ranked s':>12} {'ratio':>8} {'peak items':>11}")
    for size in args.gallery or [301, 3010]:
        q = torch.nn.functional.normalize(torch.randn(QUERIES, args.dim, generator=g), dim=1)
        gal = torch.nn.functional.normalize(torch.randn(size, args.dim, generator=g), dim=1)
        plain = best_of(args.repeats, lambda q=q, gal=gal: distances(q, gal))
        reranked = best_of(args.repeats, lambda q=q, gal=gal: rerank_distances(q, gal, RerankSettings()))
        print(f"{size:>8} {plain:>9.3f} {reranked:>12.2f} {reranked / plain:>8.0f} {(QUERIES + size) ** 2:>11,}")


if __name__ == "__main__":
    main()
