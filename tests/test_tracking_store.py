"""A local MLflow store keeps its artifacts beside it, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mscm.tracking.uris import artifact_root_for, parse_tracking_uri


def _log_one_artifact(uri: str, tmp_path: Path) -> Path:
    from mlflow import MlflowClient

    from mscm.tracking.mlflow_run import RunLogger

    note = tmp_path / "note.txt"
    note.write_text("hello")
    run = RunLogger(uri, "artifact-home", run_name="r")
    run.log_artifact(note, "notes")
    run.end()
    client = MlflowClient(tracking_uri=run.tracking_uri, registry_uri=run.tracking_uri)
    return Path(client.get_run(run.run_id).info.artifact_uri.removeprefix("file://")) / "notes" / "note.txt"


@pytest.mark.parametrize("kind", ["sqlite", "folder"])
def test_artifacts_land_beside_a_local_store_not_in_the_working_directory(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps folder stores behind an opt-out
    cwd = tmp_path / "somewhere-else"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    store = tmp_path / "store"
    uri = f"sqlite:///{store / 'mlflow.db'}" if kind == "sqlite" else str(store)
    artifact = _log_one_artifact(uri, tmp_path)
    assert artifact.read_text() == "hello"
    assert store in artifact.parents
    if kind == "sqlite":
        assert store / "artifacts" in artifact.parents
    assert not any(cwd.iterdir())  # no ./mlruns


def test_the_artifact_root_follows_the_store():
    assert artifact_root_for("sqlite:////srv/a/mlflow.db") == "file:///srv/a/artifacts"
    assert artifact_root_for("/srv/store") is None  # a folder store keeps them inside itself
    assert artifact_root_for("http://127.0.0.1:5000") is None  # a server decides
    assert parse_tracking_uri("postgresql+psycopg2://u@h/db").kind == "database"
    assert parse_tracking_uri("file:///srv/store").path == Path("/srv/store")


def test_an_experiment_made_by_another_process_meanwhile_is_taken_not_an_error(tmp_path):
    """On a server or a database no lock is taken: between this process's lookup and its create another
    process made the experiment. The store's real "already exists" error then reads the winner's."""
    from mlflow import MlflowClient

    from mscm.tracking.mlflow_run import get_or_create_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    winner = MlflowClient(tracking_uri=uri).create_experiment("mscm")

    class LateClient(MlflowClient):  # a real client whose first lookup came just before the winner's create
        looked = False

        def get_experiment_by_name(self, name):
            if not self.looked:
                self.looked = True
                return None
            return super().get_experiment_by_name(name)

    assert get_or_create_experiment(LateClient(tracking_uri=uri), "mscm", uri) == winner
