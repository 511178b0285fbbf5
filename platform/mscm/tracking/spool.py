"""An on-disk queue of MLflow writes: what a search has to record, kept until the store took it.

One folder per search (:func:`spool_dir`): ``writes.jsonl`` holds one JSON record per write, in the order
they were made; ``sent`` holds how many of them the store has taken; ``files/`` holds copies of the
files a record will upload (so a record stays valid after Ray removes a trial's folder), each removed once
its record is sent; ``runs.json``
maps each record's run key (a trial id) to its MLflow run id once the run exists.

Appending is a write and a flush of one line: the Tune callbacks that append never wait for the
store. The writer (:mod:`mscm.tracking.writer`) reads and sends, one sender at a time
(:meth:`Spool.sending`). A record carries everything its write needs (metric timestamps included), so
sending it twice has the effect of sending it once.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

WRITES = "writes.jsonl"
SENT = "sent"
RUNS = "runs.json"
FILES = "files"
SENDING = "sending.lock"


def spool_dir(storage_path: str, search: str) -> Path:
    """The spool of search ``search``: beside its Tune experiment when the storage is a local folder,
    else under MSCM_HOME (a cloud storage path is not a place to append lines to)."""
    if "://" not in storage_path:
        return Path(storage_path) / f"{search}.mlflow-spool"
    from ..paths import project_dir

    return project_dir() / "spool" / search


class Spool:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FILES).mkdir(exist_ok=True)
        self._lock = threading.Lock()  # appends come from the Tune loop, reads from the writer thread
        self._records = self._read()  # in memory too: the writer polls, and the file grows for days
        self._epochs: dict[str, int] = {}  # run key -> the last epoch whose metrics were spooled
        for r in self._records:
            self._note_epoch(r)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles the callbacks that hold a spool
        return {"folder": str(self.folder)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])

    def append(self, op: str, **fields: Any) -> None:
        record = {"op": op, **fields}
        line = json.dumps(record, default=str)
        with self._lock, open(self.folder / WRITES, "a") as f:
            f.write(line + "\n")
            f.flush()
            self._records.append(json.loads(line))
            self._note_epoch(record)

    def _note_epoch(self, record: dict[str, Any]) -> None:
        if record.get("op") == "metrics" and record.get("epoch"):
            self._epochs[record["key"]] = max(self._epochs.get(record["key"], 0), int(record["step"]))

    def last_epoch(self, key: str) -> int:
        """The last epoch of run ``key`` already in the spool (0: none): a report of an earlier or the same
        epoch is a repeat (a restored trial reporting its last epoch again) and is not spooled twice."""
        with self._lock:
            return self._epochs.get(key, 0)

    def sending(self) -> AbstractContextManager[None]:
        """Held by whoever sends the spool's records, so one sender sends at a time: the writer's thread, a
        direct call, and ``mscm sync`` in another process alike (``flock`` on ``sending.lock``; the kernel
        frees it when a holder dies). Two senders at once applied a record twice, and the second copy of an
        upload then found its file already dropped by the first and retried for ever."""
        from ..data.fsutil import file_lock  # here: mscm.data pulls in the dataset readers and numpy

        return file_lock(self.folder / SENDING)

    def keep_file(self, path: str | Path) -> str:
        """A copy of ``path`` owned by the spool (its name in ``files/``), for a later upload."""
        name = f"{uuid.uuid4().hex[:12]}-{Path(path).name}"
        shutil.copy2(path, self.folder / FILES / name)
        return name

    def file(self, name: str) -> Path:
        return self.folder / FILES / name

    def records(self) -> list[dict[str, Any]]:
        """Every record in order."""
        with self._lock:
            return list(self._records)

    def _read(self) -> list[dict[str, Any]]:
        path = self.folder / WRITES
        if not path.exists():
            return []
        lines = path.read_text().split("\n")
        return [json.loads(line) for line in lines[:-1] if line]  # a line cut short by a crash is not one

    def sent(self) -> int:
        path = self.folder / SENT
        return int(path.read_text()) if path.exists() else 0

    def mark_sent(self, count: int) -> None:
        """``count`` records are in the store; the file copies of those just sent are not needed again."""
        before = self.sent()
        _atomic_write(self.folder / SENT, str(count))
        with self._lock:
            done = self._records[before:count]
        for r in done:  # after the count is on disk: a crash in between leaves a copy, never a missing one
            if r.get("file"):
                (self.folder / FILES / r["file"]).unlink(missing_ok=True)

    def pending(self) -> int:
        with self._lock:
            count = len(self._records)
        return count - self.sent()

    def runs(self) -> dict[str, str]:
        path = self.folder / RUNS
        return json.loads(path.read_text()) if path.exists() else {}

    def remember_run(self, key: str, run_id: str) -> None:
        runs = self.runs()
        runs[key] = run_id
        _atomic_write(self.folder / RUNS, json.dumps(runs, indent=1))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
