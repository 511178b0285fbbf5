"""Opening an MLflow store, one process at a time for a local SQLite file.

MLflow creates and migrates a SQLite database when a client first opens it (``MlflowClient(...)`` itself
does). Two processes doing that at once fail: the others get ``table ... already exists`` or ``Online
migration expected to match one row`` from their migrations (seen with two `mscm tune` started together on
one new store; the same race is mlflow/mlflow#19943 and daizutabi/hydraflow#245). Every client mscm makes
is opened here, under a lock on the database file, so the next process finds the store migrated."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .uris import parse_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient


def open_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient on ``tracking_uri`` (its registry too), opened under :func:`sqlite_store_lock`."""
    from mlflow import MlflowClient

    with sqlite_store_lock(tracking_uri):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def sqlite_store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a local SQLite store's file for the block; any other store takes none.

    The lock is ``flock`` on the database file itself, so no second file appears beside the store. SQLite
    locks with ``fcntl`` byte-range locks, which ``flock`` does not touch on a local Linux file system, so
    readers and writers of an existing store are not held up. Opening the file creates it (and its
    folders) when absent, as MLflow's own first open does; SQLite and MLflow take an empty file as a new
    database."""
    store = parse_tracking_uri(tracking_uri)
    if store.kind != "sqlite":
        yield
        return
    store.path.parent.mkdir(parents=True, exist_ok=True)
    with open(store.path, "ab") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
