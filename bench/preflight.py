"""How fast bad input is reported, and what the preflight costs on a large dataset.

    PYTHONPATH=platform python bench/preflight.py                      # 2000-identity synthetic SYSU tree
    PYTHONPATH=platform python bench/preflight.py --identities 500 --runs 5

1. Time to the error line, from the command's start (Python start-up included): ``mscm train`` with a
   dataset root that does not exist, and with one truncated JPEG in a synthetic SYSU tree.
2. The preflight alone (layout, split files, identity coverage, every image header) on the largest
   synthetic SYSU-MM01 tree generated here, and that time per 10,000 images.
Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def time_to_error(args: list[str], env: dict[str, str], cwd: Path, runs: int) -> tuple[float, str]:
    """Median wall time of ``python -m mscm ARGS`` (expected to fail with exit 2) and its error line."""
    times, line = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mscm", *args], env=env, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip().splitlines()[0]
    return statistics.median(times), line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--identities", type=int, default=2000, help="identities of the large synthetic SYSU tree")
    p.add_argument("--runs", type=int, default=3, help="repetitions of each time-to-error command")
    p.add_argument("--keep", metavar="DIR", help="generate (or reuse) the large tree here instead of a temp folder")
    args = p.parse_args()

    from mscm.config import load_run_config
    from mscm.data.synth import ensure_synthetic
    from mscm.preflight import check_dataset

    with tempfile.TemporaryDirectory(prefix="mscm-bench-preflight-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "MSCM_HOME": str(tmp / "home"), "PYTHONPATH": str(REPO / "platform")}
        stores = [
            "--tracking-uri",
            f"sqlite:///{tmp / 'stores' / 'mlflow.db'}",
            "--set",
            f"train.storage_path={tmp / 'stores' / 'ray'}",
        ]
        root_s, root_line = time_to_error(
            ["train", "-c", "smoke", "--set", f"data.root={tmp / 'missing'}", *stores], env, tmp, args.runs
        )
        small = ensure_synthetic("sysu", 48, 0, 128, 64, root=tmp / "small", progress=False)
        victim = sorted((small / "cam1").glob("*/*.jpg"))[0]
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        jpeg_s, jpeg_line = time_to_error(
            ["train", "-c", "smoke", "--set", f"data.root={small}", *stores], env, tmp, args.runs
        )
        print(f"bad dataset root:  {root_s:5.2f} s to the error line (target < 15 s)\n  {root_line}")
        print(f"truncated JPEG:    {jpeg_s:5.2f} s to the error line (target < 30 s)\n  {jpeg_line}")

        big_root = Path(args.keep) if args.keep else tmp / "large"
        start = time.perf_counter()
        big = ensure_synthetic("sysu", args.identities, 0, 128, 64, root=big_root, progress=True)
        print(f"generated / found {big} in {time.perf_counter() - start:.1f} s")
        cfg = load_run_config("smoke", {"data.root": str(big)})
        check_dataset(cfg.data, progress=False)  # warm the page cache, as a re-run would find it
        start = time.perf_counter()
        check = check_dataset(cfg.data, progress=True)
        took = time.perf_counter() - start
        d = check.dataset
        print(
            f"preflight of {check.images} images ({d.num_classes} training ids, "
            f"{len({r.pid for r in d.test_visible})} test ids): {took:.2f} s, "
            f"{took * 10_000 / check.images:.2f} s per 10,000 images, {len(check.unreadable)} unreadable"
        )


if __name__ == "__main__":
    main()
