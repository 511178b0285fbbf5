"""What an MLflow tracking URI points at, and where a local store keeps its artifacts.

A local store (``sqlite:///…`` or a plain folder / ``file:`` URI) keeps its artifacts beside it,
in ``<store folder>/artifacts``, whatever the working directory: MLflow's own default for a store
without a server is ``./mlruns`` of the process that creates the experiment. A server
(``http(s)://``) or a database server keeps them where it is configured to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import TrackingError

SERVER_SCHEMES = ("http", "https")
DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
MANAGED_SCHEMES = ("databricks", "databricks-uc", "uc")
ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class TrackingStore:
    """A parsed tracking URI: ``kind`` is sqlite, folder, server, database or managed."""

    uri: str
    kind: str
    path: Path | None = None  # the SQLite file or the store folder, for local stores

    @property
    def local(self) -> bool:
        return self.path is not None

    @property
    def artifact_dir(self) -> Path | None:
        """The folder a local store's artifacts go to: ``artifacts/`` beside a SQLite file, a folder
        store itself; None for servers, which decide for themselves."""
        return self.path.parent / ARTIFACTS_DIR if self.kind == "sqlite" else self.path

    @property
    def artifact_root(self) -> str | None:
        """The artifact location for new experiments: beside a SQLite store, else the store's own."""
        return self.artifact_dir.as_uri() if self.kind == "sqlite" else None


def parse_tracking_uri(uri: str) -> TrackingStore:
    """Classify ``uri``; a malformed or unsupported one raises :class:`TrackingError` naming it."""
    scheme = urlparse(uri).scheme.lower()
    base = scheme.split("+", 1)[0]  # postgresql+psycopg2
    if scheme == "sqlite":
        if not uri.startswith("sqlite:///") or len(uri) == len("sqlite:///"):
            raise TrackingError(f"tracking URI {uri!r}: a SQLite URI names a file: sqlite:////absolute/path/mlflow.db")
        return TrackingStore(uri, "sqlite", Path(uri[len("sqlite:///") :]).expanduser().absolute())
    if scheme == "file":
        return TrackingStore(uri, "folder", Path(urlparse(uri).path).expanduser().absolute())
    if scheme == "":
        return TrackingStore(uri, "folder", Path(uri).expanduser().absolute())
    if scheme in SERVER_SCHEMES:
        if not urlparse(uri).netloc:
            raise TrackingError(f"tracking URI {uri!r}: no host (expected {scheme}://HOST:PORT)")
        return TrackingStore(uri, "server")
    if base in DATABASE_SCHEMES:
        return TrackingStore(uri, "database")
    if scheme in MANAGED_SCHEMES:
        return TrackingStore(uri, "managed")
    raise TrackingError(
        f"tracking URI {uri!r}: unsupported scheme {scheme!r} (use sqlite:///PATH, a folder, http(s)://HOST:PORT "
        f"or a database URL)"
    )


def local_artifact_folder(location: str) -> Path | None:
    """The folder a configured artifact location names on this machine (a path or a ``file:`` URI); None
    for a remote one (``s3://…``), which MLflow reaches itself."""
    if location.startswith("file:"):
        return Path(urlparse(location).path)
    if "://" in location:
        return None
    return Path(location).expanduser().absolute()


def artifact_location_uri(location: str) -> str:
    """A configured artifact location as MLflow takes it: a local path becomes an absolute ``file:`` URI."""
    if location.startswith("file:") or "://" in location:
        return location
    return local_artifact_folder(location).as_uri()


def require_artifact_location(store: TrackingStore, location: str | None) -> None:
    """A database store used without a server has no artifact root of its own: MLflow would write into
    ``./mlruns`` of the current folder (on a cluster, the head node's). Refuse that in one line."""
    if store.kind == "database" and not location:
        raise TrackingError(
            f"tracking URI {store.uri!r}: a database store used without a server needs an artifact location, "
            "or MLflow writes the models into ./mlruns of the current folder",
            hint="--artifact-location /shared/folder or s3://bucket/prefix (config: tracking.artifact_location), "
            "or run `mlflow server` on the database and track to http://HOST:PORT",
        )


def artifact_root_for(uri: str, location: str | None = None) -> str | None:
    """Where new experiments of the store at ``uri`` put their artifacts: the configured ``location``,
    else beside a SQLite store; None: a server decides."""
    if location:
        return artifact_location_uri(location)
    try:
        return parse_tracking_uri(uri).artifact_root
    except TrackingError:
        return None


__all__ = [
    "TrackingStore",
    "parse_tracking_uri",
    "artifact_root_for",
    "artifact_location_uri",
    "local_artifact_folder",
    "require_artifact_location",
    "ARTIFACTS_DIR",
]
