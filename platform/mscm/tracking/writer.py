"""The background writer: sends a :class:`~mscm.tracking.spool.Spool`'s records to MLflow, in order,
retrying with backoff for as long as the store is away.

It runs as a daemon thread of the search's driver (and in ``mscm sync``). Each record is applied
idempotently: a run is found again by its key before one is created, metrics carry their own timestamps
(MLflow drops an identical metric row), params, tags and artifacts overwrite with the same values, a
model is logged only while its run has no ``model_uri`` tag, and ending a run twice ends it once.
A record the store refuses as invalid (not a connection failure) would block the queue for ever; it
is set aside in ``refused.jsonl`` with the reason, and the writer goes on.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from .spool import Spool

log = logging.getLogger(__name__)

# MLflow error codes that say the request itself is wrong: retrying cannot help.
_PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST", "INVALID_STATE"}
BACKOFF_S = (0.5, 30.0)  # first wait after a failure, and the longest

# MLflow's HTTP client retries a request itself, 7 times with factor-2 backoff (mlflow.environment_variables):
# a request begun while the server was away kept the writer waiting ~90 s after it came back (measured,
# tests/test_tune_outage.py). In this process the writer's own backoff is the policy: MLflow gives up after
# one quick retry, so the queue moves within BACKOFF_S[1] of the server's return. A user's setting wins.
_MLFLOW_HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def is_permanent(error: Exception) -> bool:
    return getattr(error, "error_code", None) in _PERMANENT


class SpoolWriter:
    def __init__(self, spool: Spool, tracking_uri: str):
        from .store_open import open_client

        self.spool, self.tracking_uri = spool, tracking_uri
        for name, value in _MLFLOW_HTTP_RETRIES.items():
            os.environ.setdefault(name, value)  # read by MLflow at each request
        self.client = open_client(tracking_uri)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # failed attempts so far (for the console and tests)
        self.last_error: str | None = None

    def start(self) -> SpoolWriter:
        self._thread = threading.Thread(target=self._loop, name="mscm-mlflow-writer", daemon=True)
        self._thread.start()
        return self

    def poke(self) -> None:
        """New records are in the spool."""
        self._wake.set()

    def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the spool to empty; returns how many records still wait."""
        deadline = time.monotonic() + timeout_s
        self.poke()
        while self.spool.pending() > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.spool.pending()

    def stop(self, join_s: float = 10.0) -> None:
        """Stop sending, and wait up to ``join_s`` for the writer's thread to end: a caller that sends the
        spool itself next (``mscm sync``, a test) then meets no sender of this writer still running. A
        thread in the middle of a request to an away store may outlast the wait; it sends no record after
        that one."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=join_s)

    def send_all(self) -> int:
        """Send every pending record, each retried until it is taken or set aside; returns how many were
        sent. Stops early (leaving the rest pending) when :meth:`stop` is called.

        One sender at a time (:meth:`Spool.sending`, across threads and processes): a second waits, then
        finds what the first sent already marked. Two at once applied one record twice, and the second copy
        of an artifact record found its file already dropped by the first's mark_sent and retried for ever
        (seen once in a fresh clone's CI: tests/test_tracking_spool.py hung)."""
        with self.spool.sending():
            records, sent = self.spool.records(), self.spool.sent()
            done = 0
            for index in range(sent, len(records)):
                if self._stop.is_set() or not self._apply_with_retry(records[index]):
                    break
                self.spool.mark_sent(index + 1)
                done += 1
            return done

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.send_all()
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def _apply_with_retry(self, record: dict[str, Any]) -> bool:
        wait = BACKOFF_S[0]
        while True:
            try:
                apply_record(self, record)
                return True
            except Exception as e:  # MlflowException, requests' connection errors, OSError
                if is_permanent(e) or isinstance(e, LookupError):  # its run was refused, or its file is gone
                    self._refuse(record, e)
                    return True
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                log.debug("MLflow write %s failed (%s); retrying in %.1f s", record.get("op"), self.last_error, wait)
            if self._stop.wait(wait):
                return False
            wait = min(wait * 2, BACKOFF_S[1])

    def _refuse(self, record: dict[str, Any], error: Exception) -> None:
        with open(self.spool.folder / "refused.jsonl", "a") as f:
            f.write(json.dumps({"record": record, "error": f"{type(error).__name__}: {error}"[:2000]}) + "\n")
        log.warning("MLflow refused a %s write (%s); kept in refused.jsonl", record.get("op"), error)


def apply_record(writer: SpoolWriter, record: dict[str, Any]) -> None:
    from .spool_ops import OPS

    OPS[record["op"]](writer.client, writer.spool, record)
