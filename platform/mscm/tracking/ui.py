"""``mscm ui``: the MLflow UI on a tracking store and optuna-dashboard on the study storage, together.

Both run as child processes of this one, from the same Python (so nothing needs to be on PATH or a
venv to be active), bound to 127.0.0.1 unless told otherwise. MLflow runs light: one worker and no
job runner (about 0.5 GB instead of 3 GB on this machine). Ctrl-C stops both.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrackingError
from .uris import parse_tracking_uri

READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Server:
    name: str
    argv: list[str]
    url: str
    env: dict[str, str]


def ui_command(tracking_uri: str, optuna_url: str | None = None) -> str:
    """The ``mscm ui`` command for this store, runnable as printed (the venv need not be active)."""
    from ..redact import redact  # printed: the password comes from the environment when it runs

    parts = [sys.executable, "-m", "mscm", "ui", "--store", redact(tracking_uri)]
    if optuna_url:
        parts += ["--optuna-url", redact(optuna_url)]
    return shlex.join(parts)


def default_optuna_url_for(tracking_uri: str) -> str | None:
    """The Optuna storage a search kept beside this SQLite store (``optuna.db`` next to it), if any."""
    from ..paths import default_optuna_url

    store = parse_tracking_uri(tracking_uri)
    if store.kind == "sqlite" and (store.path.parent / "optuna.db").is_file():
        return f"sqlite:///{store.path.parent / 'optuna.db'}"
    return default_optuna_url()


def mlflow_server(tracking_uri: str, host: str, port: int) -> Server:
    root = parse_tracking_uri(tracking_uri).artifact_root
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if root:
        argv += ["--default-artifact-root", root]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Server("MLflow UI", argv, f"http://{host}:{port}", env)


def optuna_dashboard(optuna_url: str, host: str, port: int) -> Server:
    script = Path(sys.executable).with_name("optuna-dashboard")
    argv = [str(script) if script.exists() else "optuna-dashboard", optuna_url, "--host", host, "--port", str(port)]
    return Server("Optuna dashboard", argv, f"http://{host}:{port}", {})


def _wait_ready(server: Server, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TrackingError(
                f"{server.name} exited with code {proc.returncode} before it answered ({shlex.join(server.argv)})"
            )
        try:
            with urllib.request.urlopen(server.url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TrackingError(f"{server.name} did not answer at {server.url} within {READY_TIMEOUT_S:.0f} s")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_ui(tracking_uri: str, optuna_url: str) -> Iterator[tuple[str, str]]:
    """``mscm ui`` on these stores, started as a search prints it, on free ports, for the length of the
    block: yields the MLflow UI and optuna-dashboard URLs once both answer (scripts and tests)."""
    ports = free_port(), free_port()
    argv = [*shlex.split(ui_command(tracking_uri, optuna_url)), "--port", str(ports[0]), "--optuna-port", str(ports[1])]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 2 * READY_TIMEOUT_S  # both servers, one after the other
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith("Ctrl-C"):  # serve() prints that once both answer
                break
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        proc.terminate()
        proc.wait(timeout=40)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(servers: list[Server], *, announce=print) -> int:
    """Start ``servers``, print their URLs once each answers, and run until Ctrl-C (or SIGTERM) or
    until one exits; then stop the others. Returns the exit code of a server that died, else 0."""
    procs: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for server in servers:
            # Own process group: a Ctrl-C reaches this process alone, which then stops each child.
            procs.append(subprocess.Popen(server.argv, env={**os.environ, **server.env}, start_new_session=True))
        for server, proc in zip(servers, procs):
            _wait_ready(server, proc)
            announce(f"{server.name}: {server.url}")
        announce("Ctrl-C stops " + ("both" if len(servers) == 2 else "it"))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return next(p.returncode for p in procs if p.poll() is not None) or 0
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(procs)


__all__ = [
    "Server",
    "ui_command",
    "mlflow_server",
    "optuna_dashboard",
    "serve",
    "default_optuna_url_for",
    "running_ui",
    "free_port",
]
