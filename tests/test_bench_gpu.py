"""bench/gpu.py runs where only torch is installed (the lent GPU machine's image): its CPU smoke run,
with Ray, MLflow, Optuna, SciPy and psutil made unimportable, must finish and report every part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("ray", "mlflow", "optuna", "scipy", "psutil")  # not on the device image (docs/gpu.md)

BLOCKER = f"""
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not on the device image)")
        return None
sys.meta_path.insert(0, Absent())
sys.argv = ["bench/gpu.py"] + sys.argv[1:]
runpy.run_path("bench/gpu.py", run_name="__main__")
"""


def test_the_gpu_benchmark_smoke_runs_with_torch_alone(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": "platform", "MSCM_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER,
            "--device",
            "cpu",
            "--smoke",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {"sizes", "train step", "engine epoch", "evaluation", "ranking", "total"}
    assert figures["train step"]["mscm_compiled_images_per_s"] > 0 and figures["train step"]["ratio_to_reference"] > 0
    assert figures["engine epoch"]["check_every_50_steps_per_s"] > 0
    assert figures["evaluation"]["max_map_difference_points"] == 0.0  # the CPU extracts fp32 either way
    assert figures["ranking"]["same_first_ranks_on_the_slice"] is True
    assert not (tmp_path / "home").exists()  # its temporary folder only, removed at the end


def test_the_gpu_benchmark_says_so_when_there_is_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run(
        [sys.executable, "bench/gpu.py"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": "platform"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no CUDA device here" in proc.stderr and "Traceback" not in proc.stderr
