"""Opening an MLflow store: every client mscm makes, under the store's creation lock.

MLflow creates and migrates a new database when a client first opens it (``MlflowClient(...)`` itself
does), and two processes doing that at once fail (seen with two `mscm tune` started together on one new
store; mlflow/mlflow#19943, daizutabi/hydraflow#245). :mod:`.store_lock` makes them take turns, so the next
process finds the store migrated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store_lock import creation_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient


def open_client(tracking_uri: str) -> MlflowClient:
    """An MlflowClient on ``tracking_uri`` (its registry too), opened under :func:`creation_lock`."""
    from mlflow import MlflowClient

    with creation_lock(tracking_uri):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
