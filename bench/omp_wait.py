"""OpenMP's waiting threads: one training alone and two at once, under several wait settings.

torch's OpenMP runtime (libgomp) lets a thread that waits for work spin before it sleeps. Spinning is the
fastest choice while the process has the cores to itself and a waste when two processes share them, which
is what the test suite does (tests/conftest.py sets OMP_WAIT_POLICY=PASSIVE; docs/benchmarks.md, "OpenMP's
waiting threads"). This prints, for each setting, one epoch of the learning check's recipe (2 threads)
trained alone and by two processes at once, with the wall time, the CPU time and the loss (which must not
move with the setting). MSCM_HOME (the synthetic data) is a temporary folder unless it is set.

    python bench/omp_wait.py                      # 4 settings x 2 rounds, ~8 min on 2 cores
    python bench/omp_wait.py --rounds 1 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "platform"), str(REPO / "tests")]
OMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# label -> the OpenMP variables it sets; libgomp's defaults: spin 300,000 unset, 0 when PASSIVE
# (https://gcc.gnu.org/onlinedocs/libgomp/GOMP_005fSPINCOUNT.html)
SETTINGS: dict[str, dict[str, str]] = {
    "unset": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin 10000": {"GOMP_SPINCOUNT": "10000"},
    "spin 1000": {"GOMP_SPINCOUNT": "1000"},
}


def train_one_epoch(steps: int) -> dict[str, float]:
    """One warm-up epoch of the learning recipe, then one timed epoch of ``steps`` steps (in this process)."""
    from learning_recipe import recipe_config

    from mscm.train.engine import Engine

    engine = Engine(recipe_config(data__iterations_per_epoch=steps, schedule__epochs=2))
    engine.train_epoch()  # data, first allocations
    wall, cpu = time.perf_counter(), time.process_time()
    loss = engine.train_epoch()["loss/total"]
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "loss": loss}


def _children(setting: dict[str, str], steps: int, count: int) -> list[dict[str, float]]:
    """``count`` trainings started together under ``setting``, each in a fresh process (libgomp reads its
    variables once, when it loads)."""
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARIABLES} | setting
    argv = [sys.executable, __file__, "--child", str(steps)]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    outs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"a training under {setting or 'the defaults'} failed")
    return [json.loads(out.splitlines()[-1]) for out in outs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all settings, alternating (default 2)")
    parser.add_argument(
        "--steps", type=int, default=40, help="steps of the timed epoch alone; each of the pair trains half"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        from mscm.train.determinism import pin_cpu_kernels  # before torch, as in the suite

        pin_cpu_kernels()
        print(json.dumps(train_one_epoch(args.child)), flush=True)
        return
    from learning_recipe import synthetic_home

    # The synthetic data in a temporary home (unless one is set), made by the first child, read by the next.
    with synthetic_home("mscm-omp-"):
        _table(args.rounds, args.steps)


def _table(rounds: int, steps: int) -> None:
    print("setting     | alone: epoch wall, CPU-s, loss | two at once: each epoch's wall, their CPU-s, loss")
    for _ in range(rounds):
        for label, setting in SETTINGS.items():
            (alone,) = _children(setting, steps, 1)
            pair = _children(setting, steps // 2, 2)
            walls = ", ".join(f"{p['wall']:.1f}" for p in pair)
            print(
                f"{label:11s} | {alone['wall']:5.1f} s {alone['cpu']:5.1f} {alone['loss']:.6f} | "
                f"{walls} s {sum(p['cpu'] for p in pair):5.1f} {pair[0]['loss']:.6f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
