"""Preflight of the places a command writes: the Ray results folder, the MLflow store and its
artifact root, the Optuna storage. Everything is checked before anything is created, so a failed
check leaves no trace; :func:`create_stores` then makes the folders."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import StorageError, TrackingError
from ..tracking.uris import TrackingStore, local_artifact_folder, parse_tracking_uri, require_artifact_location

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SERVER_TIMEOUT_S = 5.0


def folder_problem(path: Path) -> str | None:
    """Why the folder ``path`` cannot be created or written, or None. Probes with a temporary folder
    that is removed at once (``os.access`` says yes to root everywhere)."""
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a regular file, so no folder can be made under it"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mscm-probe-", dir=existing))
    except OSError as e:
        return f"cannot write in {existing} ({e.strerror or e})"
    return None


def check_storage_path(path: str, key: str = "train.storage_path") -> Path | None:
    """A local results folder must be creatable; remote ones (``s3://``, ``gs://``) are Ray's to check."""
    if "://" in path:
        return None
    folder = Path(path).expanduser().absolute()
    problem = folder_problem(folder)
    if problem:
        raise StorageError(f"{key} {path!r}: {problem}", hint=f"--set {key}=<a writable folder>")
    return folder


def _sqlite_file_problem(file: Path) -> str | None:
    if file.is_dir():
        return f"{file} is a folder, not a SQLite file"
    if file.is_file() and file.stat().st_size:
        with open(file, "rb") as fh:
            if fh.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                return f"{file} exists and is not a SQLite database"
    return folder_problem(file.parent)


def _server_problem(uri: str) -> str | None:
    import base64
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri.rstrip("/"))
    # urllib takes no user:password in the host: send them as basic auth, as MLflow's client does
    host = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=host)) + "/health")
    if parts.username:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=_SERVER_TIMEOUT_S) as reply:
            return None if reply.status == 200 else f"GET /health answered {reply.status}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"no MLflow server answers there ({getattr(e, 'reason', e)})"


def check_artifact_location(location: str | None) -> Path | None:
    """A configured local artifact folder must be creatable; returns it (remote ones are MLflow's to check)."""
    folder = local_artifact_folder(location) if location else None
    if folder is None:
        return None
    problem = folder_problem(folder)
    if problem:
        raise TrackingError(f"tracking.artifact_location {location!r}: {problem}", hint="--artifact-location FOLDER")
    return folder


def check_tracking_uri(uri: str, *, must_exist: bool = False, artifact_location: str | None = None) -> TrackingStore:
    """The MLflow store at ``uri`` can be written (or, ``must_exist``, read: nothing new is created); a
    database store used directly needs ``artifact_location``."""
    store = parse_tracking_uri(uri)
    if not must_exist:
        require_artifact_location(store, artifact_location)
    problem = None
    if store.kind == "sqlite":
        problem = _sqlite_file_problem(store.path)
        if problem is None and must_exist and not store.path.is_file():
            problem = f"no MLflow store at {store.path}"
        if problem is None:
            problem = folder_problem(store.artifact_dir)
    elif store.kind == "folder":
        problem = folder_problem(store.path)
        if problem is None and must_exist and not store.path.is_dir():
            problem = f"no MLflow store at {store.path}"
        if problem is None and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
            # MLflow 3 refuses new writes to folder stores unless this opt-out is set.
            problem = "a folder store is in maintenance mode in MLflow 3 (set MLFLOW_ALLOW_FILE_STORE=true to use it)"
    elif store.kind == "server":
        problem = _server_problem(uri)
    if problem:
        raise TrackingError(
            f"tracking URI {uri!r}: {problem}",
            hint="--tracking-uri sqlite:////abs/path/mlflow.db, a folder, or http://HOST:PORT",
        )
    return store


def check_optuna_url(url: str) -> Path | None:
    """An Optuna RDB storage URL (SQLAlchemy form) that parses, has a known backend and, for SQLite,
    a writable file. Returns the SQLite file, if any."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise TrackingError(
            f"Optuna storage URL {url!r}: not a SQLAlchemy database URL ({e})",
            hint="--optuna-url sqlite:////abs/path/optuna.db or postgresql://USER@HOST/DB",
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database:
        raise TrackingError(
            f"Optuna storage URL {url!r}: an in-memory SQLite database keeps no study",
            hint="--optuna-url sqlite:////abs/path/optuna.db",
        )
    file = Path(parsed.database).expanduser().absolute()
    problem = _sqlite_file_problem(file)
    if problem:
        raise TrackingError(f"Optuna storage URL {url!r}: {problem}")
    return file


def create_stores(folders: list[Path | None], sqlite_files: list[Path | None]) -> None:
    """Make the checked folders and the parents of the checked SQLite files."""
    for folder in folders:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    for file in sqlite_files:
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
