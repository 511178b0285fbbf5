"""A trial's MLflow run as seen from the Tune driver: every write becomes a spool record
(:mod:`mscm.tracking.spool`) and returns at once; the background writer sends it.

The methods mirror :class:`mscm.tracking.mlflow_run.RunLogger`'s, so the Tune callback reads the same
whichever it holds. :func:`writer_for` keeps one writer thread per spool in the process, shared by the
callback (which pokes it) and the search (which waits for it to drain at the end).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any

from ..config import RunConfig, dump_yaml
from .mlflow_run import config_params, log_best_checkpoint, metric_values
from .spool import Spool
from .writer import SpoolWriter

_WRITERS: dict[tuple[str, str], SpoolWriter] = {}
_WRITERS_LOCK = threading.Lock()
_STORES: dict[str, str] = {}  # spool folder -> its tracking URI as given (password included)


def register_store(spool: Spool, tracking_uri: str) -> None:
    """The URI a spool's writer uses, given by the search in this process. Tune pickles its callbacks
    into the experiment state with the URI's password masked; they find the real one here."""
    _STORES[str(spool.folder.resolve())] = tracking_uri


def store_of(spool: Spool, fallback: str) -> str:
    return _STORES.get(str(spool.folder.resolve()), fallback)


def writer_for(spool: Spool, tracking_uri: str) -> SpoolWriter:
    """The process's running writer of ``spool`` (started on first use)."""
    key = (str(spool.folder.resolve()), tracking_uri)
    with _WRITERS_LOCK:
        if key not in _WRITERS:
            _WRITERS[key] = SpoolWriter(spool, tracking_uri).start()
        return _WRITERS[key]


def stop_writer(spool: Spool, tracking_uri: str) -> None:
    with _WRITERS_LOCK:
        writer = _WRITERS.pop((str(spool.folder.resolve()), tracking_uri), None)
    if writer is not None:
        writer.stop()


class SpooledRun:
    def __init__(
        self,
        spool: Spool,
        writer: SpoolWriter,
        key: str,
        *,
        experiment: str,
        run_name: str,
        parent_run_id: str,
        tags: dict[str, str],
    ):
        self.spool, self.writer, self.key = spool, writer, key
        self._append("run", experiment=experiment, name=run_name, parent=parent_run_id, tags=tags)

    @classmethod
    def attached(cls, spool: Spool, writer: SpoolWriter, key: str, run_id: str) -> SpooledRun:
        """Writes to an existing run (a search's parent) through the spool: the writer learns its id
        first, in order with the other records."""
        run = cls.__new__(cls)
        run.spool, run.writer, run.key = spool, writer, key
        run._append("attach", run_id=run_id)
        return run

    def _append(self, op: str, **fields: Any) -> None:
        self.spool.append(op, key=self.key, **fields)
        self.writer.poke()

    def log_config(self, cfg: RunConfig) -> None:
        self._append("params", params=config_params(cfg))
        self._append("text", text=dump_yaml(cfg), path="config/run.yaml")

    def log_dataset(self, data) -> None:
        self._append("dataset", dataset=dataclasses.asdict(data))

    def log_metrics(self, metrics: dict[str, Any], step: int, **marks: Any) -> None:
        self._append("metrics", metrics=metric_values(metrics), step=step, timestamp=int(time.time() * 1000), **marks)

    def log_epoch_metrics(self, metrics: dict[str, Any], epoch: int) -> bool:
        """An epoch's report, once: False (nothing spooled) when this epoch's metrics are already there."""
        if epoch <= self.spool.last_epoch(self.key):
            return False
        self.log_metrics(metrics, epoch, epoch=True)
        return True

    def log_artifact(self, local_file: str, artifact_path: str) -> None:
        kept = self.spool.keep_file(local_file)
        self._append("artifact", file=kept, name=os.path.basename(local_file), artifact_path=artifact_path)

    def log_model(self, checkpoint_dir: str) -> None:
        """Queued: the writer logs it from the checkpoint folder, which Ray keeps (a trial's best)."""
        self._append("model", checkpoint=checkpoint_dir)

    def log_best_checkpoint(self, path: str, step: int, *, log_model: bool = True) -> dict[str, str]:
        return log_best_checkpoint(self, path, step, log_model=log_model)

    def prune_checkpoints(self, train_dir: str, best: str | None) -> None:
        """Queued after the model: the ended trial's Ray checkpoints shrink (:mod:`mscm.tracking.ray_storage`)."""
        self._append("prune", train_dir=train_dir, best=best)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._append("tags", tags={k: str(v) for k, v in tags.items()})

    def end(self, status: str = "FINISHED") -> None:
        self._append("end", status=status)


def drain(spool: Spool, tracking_uri: str, timeout_s: float, sync_command: str) -> None:
    """Wait up to ``timeout_s`` for the writer to send what the spool holds; raise
    :class:`~mscm.errors.TrackingPending` (exit code 75) naming the command that sends the rest."""
    from ..errors import TrackingPending

    writer = writer_for(spool, tracking_uri)
    left = writer.drain(timeout_s)
    if not left:
        stop_writer(spool, tracking_uri)
        return
    reason = f" (last error: {writer.last_error})" if writer.last_error else ""
    raise TrackingPending(
        f"{left} MLflow writes wait in {spool.folder}: {tracking_uri} did not take them within "
        f"{timeout_s:g} s{reason}. Nothing is lost",
        hint=f"send them once the store is back: {sync_command}",
    )
