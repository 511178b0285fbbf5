"""bench/learning_spread.py reads its seed lists as documented: ranges and commas, and an empty list for
`--repeat`'s default (an empty text once crashed the script before its first training); it refuses a bad
seed list or recipe override (`--set KEY=VALUE`, values read as YAML) in one line before any training; and a
tiny run carries its overrides into the training and leaves no temporary home behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from learning_recipe import synthetic_home  # noqa: E402
from learning_spread import _seeds  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "learning_spread.py"


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-9", list(range(10))), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]), ("4", [4]), ("", [])],
)
def test_seed_lists_read_as_documented(text, seeds):
    assert _seeds(text) == seeds


def test_a_home_that_is_set_is_used_and_no_temporary_one_is_made(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("MSCM_HOME", str(tmp_path / "home"))
    with synthetic_home("mscm-spread-") as home:
        assert home == str(tmp_path / "home") == os.environ["MSCM_HOME"]
        assert list((tmp_path / "tmp").iterdir()) == []  # no unused temporary folder beside it
    assert os.environ["MSCM_HOME"] == str(tmp_path / "home")


def test_without_a_home_a_temporary_one_is_made_and_removed(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    monkeypatch.delenv("MSCM_HOME", raising=False)
    with synthetic_home("mscm-spread-") as home:
        assert Path(home).parent == tmp_path / "tmp" and Path(home).is_dir() and os.environ["MSCM_HOME"] == home
    assert list((tmp_path / "tmp").iterdir()) == [] and "MSCM_HOME" not in os.environ


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "schedule.epochs"], "--set expects KEY=VALUE, got 'schedule.epochs'"),
        (["--set", "schedule.epoch=3"], "schedule.epoch"),
        (["--seeds", ""], "--seeds '': no seed to train"),
        (["--seeds", "0-x"], "--seeds '0-x'"),
        (["--repeat", "5"], "--repeat '5': a repeated seed must also be in --seeds '0'"),
    ],
)
def test_bad_input_is_refused_in_one_line_with_exit_2_before_any_training(tmp_path, args, named):
    done = _run(["--seeds", "0", *args], tmp_path, {**os.environ, "MSCM_HOME": str(tmp_path / "home")})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learning_spread.py: ") and named in lines[0], done.stderr
    assert done.stdout == ""  # no training began
    assert list(tmp_path.iterdir()) == []  # nothing written: no home, no synthetic data


def test_a_tiny_run_trains_with_its_overrides_and_removes_its_temporary_home(tmp_path):
    """One epoch of one step (the recipe's 6 x 40 would take minutes): the summary shows one epoch's loss,
    the JSON holds the seed's figures, and the MSCM_HOME the script made for itself is gone."""
    tiny = ["data.iterations_per_epoch=1", "schedule.epochs=1", "schedule.warmup_epochs=0", "schedule.milestones=[]"]
    tiny += ["eval.trials=1"]
    args = ["--seeds", "3", "--json", str(tmp_path / "out.json"), *(a for item in tiny for a in ("--set", item))]
    env = {k: v for k, v in os.environ.items() if k != "MSCM_HOME"}  # so that the script makes its own
    (tmp_path / "tmp").mkdir()
    done = _run(args, tmp_path, {**env, "TMPDIR": str(tmp_path / "tmp")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recipe overrides: data.iterations_per_epoch=1, schedule.epochs=1" in done.stdout
    summary = next(line for line in done.stdout.splitlines() if line.startswith("seed 3:"))
    assert "losses [" in summary and summary.split("losses [")[1].split("]")[0].count(",") == 0, summary
    (record,) = json.loads((tmp_path / "out.json").read_text())
    assert record["seed"] == 3 and not record["repeat"] and "loss_drop" in record
    assert not list((tmp_path / "tmp").glob("mscm-spread-*"))  # the temporary home is removed
