"""The yardstick: a fixed CPU workload whose wall time says how fast this machine is today.

The development and CI machine's speed moves by about 2.5x from day to day (issue 26), so a suite time
in seconds compares nothing. ``.ci/run`` times this workload at its start and at its end and prints each
stage in yardstick units (stage seconds / yardstick seconds); a slow day and a fast one then read alike.

It needs the standard library alone (it runs before anything is installed), and it loads both cores as
the suite does: the same work runs in one process per core, and the wall time of the slowest counts. It
runs seven times and keeps the fastest (measured here: single runs spread by +-15% within a quiet
minute, the fastest of seven by about +-9%).
The work is a mix of what the suite spends its time on: interpreted Python (Ray, MLflow and the
project's own code) and tight native loops (zlib and sha256 stand in for torch's kernels).

    python3 bench/yardstick.py            # prints "yardstick: 1.25 s (2 processes)"
    python3 bench/yardstick.py --json     # {"seconds": 1.25, "processes": 2, "repeats": [...]}
    python3 bench/yardstick.py --seconds  # 1.25
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import time
import zlib

PYTHON_ROUNDS = 2_000_000  # each round: a dict update, a string format, an integer mix
NATIVE_BYTES = 128 << 20  # bytes compressed and hashed
SEED_TEXT = b"mscm yardstick: visible and infrared views of the same person. " * 64


def _python_work(rounds: int) -> int:
    table: dict[int, str] = {}
    acc = 0
    for i in range(rounds):
        key = (i * 2654435761) & 0xFFFF
        table[key] = f"{i}:{key}"
        acc = (acc * 31 + len(table[key])) & 0xFFFFFFFF
    return acc ^ len(table)


def _native_work(total: int) -> int:
    block = SEED_TEXT * (1 + (1 << 20) // len(SEED_TEXT))
    digest = hashlib.sha256()
    done = 0
    while done < total:
        packed = zlib.compress(block, 6)
        digest.update(packed)
        digest.update(block)
        done += len(block)
    return int.from_bytes(digest.digest()[:4], "big")


def workload(_: int = 0) -> None:
    """One process's share (the pool times all of them together)."""
    _python_work(PYTHON_ROUNDS)
    _native_work(NATIVE_BYTES)


def measure(processes: int | None = None, repeats: int = 7) -> dict:
    """Run the workload ``repeats`` times, each in ``processes`` processes at once (default: the usable
    cores); the yardstick is the fastest repeat, which a passing hiccup cannot lengthen but a slow day does."""
    n = processes or len(os.sched_getaffinity(0))
    walls = []
    with mp.get_context("spawn").Pool(n) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            pool.map(workload, range(n))
            walls.append(round(time.perf_counter() - start, 3))
    return {"seconds": min(walls), "processes": n, "repeats": walls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=None, help="default: one per usable core")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--seconds", action="store_true", help="print the wall seconds alone (for .ci/run)")
    args = parser.parse_args()
    result = measure(args.processes)
    if args.json:
        print(json.dumps(result))
    elif args.seconds:
        print(result["seconds"])
    else:
        print(f"yardstick: {result['seconds']:.2f} s ({result['processes']} processes)")


if __name__ == "__main__":
    main()
