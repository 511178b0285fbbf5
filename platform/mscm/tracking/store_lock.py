"""One process at a time creates a new store's tables: MLflow's backend store and Optuna's storage alike.

MLflow (inside ``MlflowClient(...)``) and Optuna (inside ``RDBStorage(...)``) create and migrate their
schema when a process first opens a new database, and processes doing that at once fail. Measured with
three processes opening one new store at the same instant (docs/tracking.md, "Many hands on one store"):

- MLflow on SQLite: "table ... already exists", "Online migration expected to match one row"
  (mlflow/mlflow#19943);
- MLflow on PostgreSQL: two of three failed in every round, ``duplicate key value violates unique
  constraint "pg_type_typname_nsp_index"`` (PostgreSQL's catalog refuses the second ``CREATE TABLE``);
- Optuna on PostgreSQL (the same error) and on SQLite (``UNIQUE constraint failed:
  alembic_version.version_num``), in one round of three each.

So every store mscm opens is opened under :func:`creation_lock`:

- a SQLite file: ``flock`` on the database file itself, so no second file appears beside the store. SQLite
  locks with ``fcntl`` byte-range locks, which ``flock`` does not touch on a local Linux file system, so
  readers and writers of an existing store are not held up. Opening the file creates it (and its folders)
  when absent, as the first open does anyway; SQLite, MLflow and Optuna take an empty file as a new one;
- PostgreSQL: a session advisory lock (``pg_advisory_lock``) in the store's database, held on a
  connection of its own. The server frees it when that connection ends, so a killed process holds
  nobody up. When the lock's connection cannot be made (the server is away), the store is opened
  without it and meets the outage its own way, as it did before the lock;
- anything else (a folder, an MLflow server, MySQL, SQL Server): no lock. A server serialises its own
  clients; MySQL and SQL Server were not available to test here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The advisory lock's key: any constant that other software on the database is unlikely to use.
# int.from_bytes(b"mscmlock") as a signed 64-bit number (PostgreSQL's bigint).
ADVISORY_KEY = int.from_bytes(b"mscmlock", "big", signed=True)


@contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold the store's creation lock for the block (see the module docstring for which stores take one)."""
    # Imported here: mscm.data pulls in the dataset readers and numpy, which opening a client does not need.
    from ..data.fsutil import file_lock

    kind, target = _lockable(url)
    if kind == "sqlite":
        with file_lock(target):
            yield
    elif kind == "postgresql":
        with _advisory_lock(url):
            yield
    else:
        yield


def _lockable(url: str) -> tuple[str | None, Path | None]:
    """("sqlite", its file) for a SQLite file, ("postgresql", None) for PostgreSQL, else (None, None)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        return None, None  # a folder store
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None, None  # not a database URL: an MLflow server, a file: URI
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        return "sqlite", Path(parsed.database).expanduser().absolute()
    if backend == "postgresql":
        return "postgresql", None
    return None, None


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    """``pg_advisory_lock`` on a connection of its own (no pool: it ends with the block). The password, if
    any, comes as the store's own connections get it: the URL in memory, ``PGPASSWORD`` or libpq's files."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        try:
            conn = engine.connect()
        except OperationalError:
            yield  # the server is away: the open that follows meets that and reports it
            return
        with conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            conn.commit()  # the lock is the session's, not the transaction's
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                conn.commit()
    finally:
        engine.dispose()
