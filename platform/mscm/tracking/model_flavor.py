"""mscm's MLflow model flavour: a checkpoint's weights plus a ``python_function`` flavour.

A model folder holds ``checkpoint/model.pt`` (read with ``torch.load(weights_only=True)``) and
``checkpoint/metrics.json``, and its MLmodel names two flavours:

- ``mscm``: the checkpoint format and version, what :func:`checkpoint_of` reads back;
- ``python_function``, whose loader is this installed package (:mod:`mscm.tracking.pyfunc`), so
  ``mlflow.pyfunc.load_model``, ``mlflow.models.predict`` and ``mlflow models serve`` use it.

Why not ``mlflow.pytorch``'s pt2: ``torch.export`` of the network took 8.8 s of the 13 s that logging a
trial's model held the Tune driver (docs/benchmarks.md), and MLflow gives a pt2 model with two tensor
inputs no python_function flavour. Copying a checkpoint takes milliseconds, and nothing in the folder
is code or a pickle: the code is the ``mscm`` package the loading environment has installed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

FLAVOR = "mscm"
DATA_DIR = "checkpoint"  # inside the model folder
LOADER_MODULE = "mscm.tracking.pyfunc"


def _requirements() -> list[str]:
    """What serving needs, pinned to what logged it (``mscm`` itself included: the loader is its code)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("mscm", "torch", "torchvision", "mlflow", "pillow"):
        try:
            out.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:  # mscm run from a source tree without an install
            out.append(package)
    return out


def _write_environment(path: Path) -> str:
    import yaml

    (path / "requirements.txt").write_text("\n".join(_requirements()) + "\n")
    python = ".".join(map(str, sys.version_info[:3]))
    env = {"python": python, "build_dependencies": ["pip"], "dependencies": ["-r requirements.txt"]}
    (path / "python_env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
    return "python_env.yaml"


def save_model(
    path: str | Path,
    mlflow_model: Any,
    *,
    checkpoint_dir: str | Path,
    signature: Any,
    input_example: Any = None,
    **_: Any,
) -> None:
    """Write a model folder at ``path`` from a checkpoint (``mlflow.models.Model.log`` calls this with the
    ``flavor=`` module; extra keyword arguments it passes along are ignored)."""
    from mlflow.models.utils import _save_example  # what MLflow's own flavours use for the example files
    from mlflow.pyfunc import add_to_model

    from ..checkpoint import FORMAT, VERSION, checkpoint_files

    path = Path(path)
    data = path / DATA_DIR
    data.mkdir(parents=True)
    for f in checkpoint_files(checkpoint_dir):  # the weights and metrics, never the optimiser state
        shutil.copy2(f, data / f.name)
    mlflow_model.signature = signature
    if input_example is not None:
        _save_example(mlflow_model, input_example, str(path))
    env = _write_environment(path)
    add_to_model(mlflow_model, loader_module=LOADER_MODULE, data=DATA_DIR, python_env=env)
    mlflow_model.add_flavor(FLAVOR, data=DATA_DIR, format=FORMAT, version=VERSION)
    mlflow_model.save(str(path / "MLmodel"))


def checkpoint_of(model_dir: str | Path, what: str) -> Path:
    """The checkpoint folder inside a downloaded model folder, after checking that mscm wrote it."""
    from mlflow.models import Model

    from ..checkpoint import FORMAT, MODEL_FILE, VERSION, CheckpointError

    model_dir = Path(model_dir)
    try:
        flavor = Model.load(str(model_dir / "MLmodel")).flavors.get(FLAVOR)
    except Exception as e:  # a missing or unreadable MLmodel
        raise CheckpointError(f"{what}: no readable MLmodel ({type(e).__name__}: {e})") from None
    if not isinstance(flavor, dict) or (flavor.get("format"), flavor.get("version")) != (FORMAT, VERSION):
        raise CheckpointError(f"{what}: not an mscm model (no {FLAVOR} flavour of format {FORMAT} version {VERSION})")
    data = model_dir / str(flavor.get("data", DATA_DIR))
    if not (data / MODEL_FILE).is_file():
        raise CheckpointError(f"{what}: its model folder has no {flavor.get('data', DATA_DIR)}/{MODEL_FILE}")
    return data
