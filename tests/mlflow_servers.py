"""A real `mlflow server` on 127.0.0.1 for the tests (the light settings of docs/stack.md: one worker,
no job runner), proxying artifacts to a folder. It can be stopped and started again on the same port
and store, as a server that goes away and comes back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from processes import restartable_port


class MlflowServer:
    def __init__(self, folder: Path, port: int | None = None, backend: str | None = None, env: dict | None = None):
        """``backend``: the store's URI (default: SQLite in ``folder``); ``env``: extra environment, such as
        the PGPASSWORD a database backend reads its password from."""
        self.folder, self.port = Path(folder), port or restartable_port()
        self.backend = backend or f"sqlite:///{self.folder / 'server.db'}"
        self.extra_env = dict(env or {})
        self.folder.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90) -> MlflowServer:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.extra_env}
        env.pop("MLFLOW_TRACKING_URI", None)
        log = open(self.folder / "server.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
            + ["--workers", "1", "--backend-store-uri", self.backend]
            + ["--artifacts-destination", str(self.folder / "artifacts")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.folder / "server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server did not start: {tail}")
            time.sleep(0.5)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)  # gone at once, as a crashed or pre-empted server
            self.proc.wait(timeout=30)
        self.proc = None
