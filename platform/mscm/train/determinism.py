"""Reproducible training: what makes two runs of the same seed compute the same numbers.

A seed fixes the data order (mscm.data.sampler), the augmentations (the engine's per-epoch generator)
and the initial weights. What it does not fix, and what this module does:

- the intra-op thread count: CPU kernels split their reductions by thread, so 1 and 2 threads round
  differently (``train.cpu_threads``);
- kernels that torch runs non-deterministically (atomics in scatter/index backward on GPUs, cuDNN's
  autotuner): ``train.deterministic`` asks torch for its deterministic variants, warning where it has
  none (``torch.use_deterministic_algorithms(..., warn_only=True)``);
- the CPU's instruction set: MKL, oneDNN and ATen pick AVX-512 or AVX2 code paths by processor, and the
  two round differently, so one seed trains to different weights on two machines. The variables of
  :data:`PINNED_CPU_KERNELS` hold all three to their AVX2 paths (MKL's conditional numerical
  reproducibility, oneDNN's ISA cap, ATen's dispatch). That removes the largest difference, not every
  one: two instances of the build machine (same packages, same code) trained a seed to different
  numbers even so. The variables are read when each library initialises, so they must be in the
  environment before torch runs its first operation: :func:`pin_cpu_kernels` is for a process's start
  (the test suite's conftest), and Ray workers inherit it from the driver.

What still varies is in docs/benchmarks.md ("What still varies").
"""

from __future__ import annotations

import os

from ..config.schema import TrainConfig  # no torch import at module level: pin_cpu_kernels runs before it

# MKL: https://www.intel.com/content/www/us/en/docs/onemkl/developer-guide-linux/ (MKL_CBWR, "Obtaining
# Numerically Reproducible Results"); oneDNN: ONEDNN_MAX_CPU_ISA ("CPU Dispatcher Control");
# ATen: ATEN_CPU_CAPABILITY (torch/csrc, cpu capability dispatch).
PINNED_CPU_KERNELS = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
# cuBLAS needs a fixed workspace for deterministic GEMMs (CUDA docs, "Results reproducibility").
CUBLAS_WORKSPACE = ":4096:8"


def pin_cpu_kernels() -> dict[str, str]:
    """Set :data:`PINNED_CPU_KERNELS` in this process's environment where not already set; returns what
    is in force."""
    for key, value in PINNED_CPU_KERNELS.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in PINNED_CPU_KERNELS}


def apply_determinism(cfg: TrainConfig) -> None:
    """Thread count and deterministic kernels for this process, as ``cfg`` asks (before the model is built)."""
    import torch

    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
    # Process-wide in torch: set both ways, so a run without the flag does not inherit an earlier run's.
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
