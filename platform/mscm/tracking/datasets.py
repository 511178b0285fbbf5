"""The dataset a run trained and evaluated on, as an MLflow run input (the Dataset column of the UI).

Described once on the driver, after the preflight has read the dataset, and logged to every run of a
search (the trials share the base config's data) or to the one run of ``mscm train``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..data.fingerprint import data_fingerprint
from ..datasets.records import VIReIDDataset

CONTEXT_TAG = "mlflow.data.context"  # MLflow's input tag that the UI shows as the dataset's role
CONTEXT = "training"


@dataclass(frozen=True)
class DatasetInput:
    """What MLflow records of a dataset: a name, a content digest, where it is, and a profile."""

    name: str  # "<layout>-<split>", e.g. "sysu-test", "sysu-val"
    digest: str  # mscm.data.fingerprint over the training and test images
    root: str
    layout: str
    split: str  # "test" (the dataset's test split) or "val" (held-out training ids)
    profile: dict


def describe_dataset(dataset: VIReIDDataset, val_identities: int = 0) -> DatasetInput:
    """The run input of ``dataset`` as read (before any hold-out); ``val_identities`` > 0 means the
    runs select on held-out training ids instead of the test split."""
    records = dataset.train_visible + dataset.train_infrared + dataset.test_visible + dataset.test_infrared
    split = "val" if val_identities else dataset.split
    profile = {
        "train_ids": dataset.num_classes - val_identities,
        "train_images": len(dataset.train_visible) + len(dataset.train_infrared),
        "eval_split": split,
        "val_identities": val_identities,
        "test_images": len(dataset.test_visible) + len(dataset.test_infrared),
    }
    return DatasetInput(
        f"{dataset.name}-{split}",
        data_fingerprint(sorted({r.path for r in records})),
        str(dataset.root),
        dataset.name,
        split,
        profile,
    )


def mlflow_input(data: DatasetInput):
    """``data`` as MLflow's run input entity, tagged with its role."""
    from mlflow.entities import Dataset, InputTag
    from mlflow.entities import DatasetInput as MlflowDatasetInput

    source = json.dumps({"root": data.root, "layout": data.layout, "split": data.split})
    entity = Dataset(
        name=data.name, digest=data.digest, source_type="local", source=source, profile=json.dumps(data.profile)
    )
    return MlflowDatasetInput(entity, tags=[InputTag(CONTEXT_TAG, CONTEXT)])


def log_dataset(client, run_id: str, data: DatasetInput) -> None:
    """Record ``data`` as the run's training input (``MlflowClient.log_inputs``, what ``mlflow.log_input`` calls)."""
    inputs = [mlflow_input(data)]
    try:
        client.log_inputs(run_id, datasets=inputs)
    except Exception as e:
        if not lost_insert_race(e):
            raise
        client.log_inputs(run_id, datasets=inputs)  # the other writer's row is there now


def lost_insert_race(error: Exception) -> bool:
    """Whether ``log_inputs`` failed because another writer inserted the same dataset first.

    MLflow's SQL store looks the dataset up and inserts it if missing, in one transaction but not
    atomically: two runs of one experiment logging a dataset it has not seen (two searches starting on one
    store) can both miss it, and the second insert breaks the key (experiment, name, digest). Its
    transaction is rolled back, so calling again finds the row and links it. The database's words, as the
    SQL store or a tracking server passes them on, for MLflow's key ``dataset_pk``.
    """
    text = str(error)
    return any(words in text for words in _DUPLICATE_DATASET)


_DUPLICATE_DATASET = (
    "UNIQUE constraint failed: datasets.",  # SQLite
    'violates unique constraint "dataset_pk"',  # PostgreSQL
    "for key 'datasets.PRIMARY'",  # MySQL 8 (not run here)
)
