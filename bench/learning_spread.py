"""The spread of the learning check: train the learning test's recipe over seeds (and repeats of a seed),
print every figure of tests/learning_recipe.py with its mean, standard deviation and mean - 4 sd, and the
floors the test asserts.

    python bench/learning_spread.py --seeds 0-9 --repeat 0          # ~2 min a run on 2 cores
    python bench/learning_spread.py --seeds 0-2 --json out.json
    python bench/learning_spread.py --seeds 0-9 --set schedule.epochs=3 --set "schedule.milestones=[2]"

Runs in the kernel environment of the test suite (tests/conftest.py pins the CPU kernels), one process,
with MSCM_HOME in a temporary folder unless it is set.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "platform"), str(REPO / "tests")]


def _seeds(text: str) -> list[int]:
    """'0-9' or '0,3,5' as a list of seeds; an empty text is none (--repeat's default)."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _fail(message: str) -> NoReturn:
    print(f"learning_spread.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _args() -> tuple[list[tuple[int, bool]], dict[str, Any], str | None]:
    """The runs (seed, is a repeat), the recipe overrides (--set, read as `mscm train --set` reads them:
    values as YAML) and the JSON path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="training seeds, e.g. 0-9 or 0,3,5 (default 0-9)")
    parser.add_argument("--repeat", default="", help="seeds to train a second time (determinism check)")
    parser.add_argument("--json", help="write every run's figures here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override, e.g. schedule.epochs=3"
    )
    args = parser.parse_args()
    from mscm.cli._common import parse_overrides
    from mscm.errors import UsageError

    try:
        runs = [(seed, False) for seed in _seeds(args.seeds)] + [(seed, True) for seed in _seeds(args.repeat)]
    except ValueError:
        _fail(f"--seeds {args.seeds!r} / --repeat {args.repeat!r}: expected seeds such as 0-9 or 0,3,5")
    if not any(not repeat for _, repeat in runs):
        _fail(f"--seeds {args.seeds!r}: no seed to train")
    if {seed for seed, repeat in runs if repeat} - {seed for seed, repeat in runs if not repeat}:
        _fail(f"--repeat {args.repeat!r}: a repeated seed must also be in --seeds {args.seeds!r}")
    try:
        return runs, parse_overrides(args.set), args.json
    except UsageError as err:
        _fail(str(err))


def main() -> None:
    runs, overrides, json_path = _args()
    from mscm.train.determinism import pin_cpu_kernels

    pinned = pin_cpu_kernels()  # before torch runs anything, as the suite's conftest does
    import torch
    from learning_recipe import recipe_config, synthetic_home

    from mscm.errors import MscmError

    try:  # a wrong key or value stops here, in one line, before any training or folder
        recipe_config(**overrides)
    except MscmError as err:
        _fail(str(err))
    print(f"torch {torch.__version__}, kernels {pinned}, capability {torch.backends.cpu.get_cpu_capability()}")
    if overrides:  # the floors printed below were set for the recipe as it is, not for this one
        print("recipe overrides: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    with synthetic_home("mscm-spread-"):
        _measure(runs, overrides, json_path)


def _measure(runs: list[tuple[int, bool]], overrides: dict[str, Any], json_path: str | None) -> None:
    from learning_recipe import FLOORS, figures, spread, summary, train_once

    rows, records = [], []
    for seed, repeat in runs:
        with tempfile.TemporaryDirectory() as folder:
            learned = train_once(Path(folder), seed=seed, **overrides)
        values = figures(learned)
        print(f"{summary(learned)}  [{learned.seconds:.0f} s{', repeat' if repeat else ''}]", flush=True)
        records.append({"seed": seed, "repeat": repeat, "seconds": learned.seconds, **values})
        if not repeat:
            rows.append(values)
    print(f"\n{len(rows)} seeds | figure | mean | sd | mean - 4 sd | floor | margin (sd)")
    for name, (mean, sd, low) in spread(rows).items():
        floor = FLOORS.get(name)
        margin = f"{(mean - floor) / sd:6.1f}" if floor is not None and sd else "     -"
        print(f"  {name:13s} {mean:8.3f} {sd:7.3f} {low:9.3f} {floor if floor is not None else '-':>7} {margin}")
    for rec in (r for r in records if r["repeat"]):
        first = next(r for r in records if r["seed"] == rec["seed"] and not r["repeat"])
        same = all(first[k] == rec[k] for k in rows[0])
        print(f"  seed {rec['seed']} repeated: {'identical figures' if same else 'DIFFERENT figures'}")
    if json_path:
        Path(json_path).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
