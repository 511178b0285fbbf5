"""bench/learning_spread.py reads its seed lists as documented: ranges and commas, and an empty list for
`--repeat`'s default (an empty text once crashed the script before its first training); and its recipe
overrides (`--set KEY=VALUE`, values read as YAML), refusing a malformed one in one line before any training."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import subprocess  # noqa: E402

from learning_spread import _seeds  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "learning_spread.py"


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-9", list(range(10))), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]), ("4", [4]), ("", [])],
)
def test_seed_lists_read_as_documented(text, seeds):
    assert _seeds(text) == seeds


@pytest.mark.parametrize(
    ("item", "named"),
    [("schedule.epochs", "--set expects KEY=VALUE, got 'schedule.epochs'"), ("schedule.epoch=3", "schedule.epoch")],
)
def test_a_bad_override_is_refused_in_one_line_with_exit_2_before_any_training(tmp_path, item, named):
    env = {**os.environ, "MSCM_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--seeds", "0", "--set", item],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learning_spread.py: ") and named in lines[0], done.stderr
    assert done.stdout == ""  # no training began
    assert list(tmp_path.iterdir()) == []  # nothing written: no home, no synthetic data
