"""Where the embedded defaults keep their state (MLflow store, Ray results, synthetic data, caches).

The project folder is ``$MSCM_HOME`` when set; else the checkout that holds this package when it is
installed in editable mode (``<repo>/platform/mscm``); else the current working directory. That
keeps ``python jobs/tune_mimb.py`` in a checkout and ``ray submit`` (script copied to ``~``) apart
from where the script file itself lies.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_dir() -> Path:
    env = os.environ.get("MSCM_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent  # .../platform/mscm
    repo = here.parent.parent
    if here.parent.name == "platform" and (repo / "pyproject.toml").is_file():
        return repo
    return Path.cwd().resolve()


def mlruns_dir() -> Path:
    return project_dir() / "mlruns"


def default_tracking_uri() -> str:
    """SQLite MLflow store under the project (artifacts beside it in mlruns/artifacts, see mscm.tracking.uris)."""
    return f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def default_optuna_url() -> str:
    return f"sqlite:///{mlruns_dir() / 'optuna.db'}"


def ray_results_dir() -> Path:
    return project_dir() / "ray_results"


def data_dir() -> Path:
    return project_dir() / "data"


def synthetic_root(layout: str, identities: int, seed: int, height: int, width: int) -> Path:
    return data_dir() / "synthetic" / f"{layout}-n{identities}-s{seed}-{height}x{width}"


def cache_dir() -> Path:
    return data_dir() / "cache"
