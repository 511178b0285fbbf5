"""``mscm ui`` for real: the command a search prints starts the MLflow UI and optuna-dashboard on the
search's stores, both answer on 127.0.0.1, and Ctrl-C (SIGINT) stops both."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from mscm.tracking.ui import free_port, ui_command


def _stores(tmp_path):
    import optuna

    from mscm.tracking.mlflow_run import RunLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    RunLogger(uri, "ui-test", run_name="t00 demo").end()
    optuna_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="ui-study", storage=optuna_url, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return uri, optuna_url


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_the_printed_ui_command_serves_both_stores_and_ctrl_c_stops_both(tmp_path):
    uri, optuna_url = _stores(tmp_path)
    command = ui_command(uri, optuna_url)
    argv = shlex.split(command)
    assert argv[0] == sys.executable  # runs as printed: no venv needs to be active
    mlflow_port, optuna_port = free_port(), free_port()
    proc = subprocess.Popen(
        [*argv, "--port", str(mlflow_port), "--optuna-port", str(optuna_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines, deadline = [], time.monotonic() + 150
        while not any(ln.startswith("Ctrl-C stops") for ln in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert f"MLflow UI: http://127.0.0.1:{mlflow_port}" in lines, lines
        assert f"Optuna dashboard: http://127.0.0.1:{optuna_port}" in lines, lines
        assert _get(f"http://127.0.0.1:{mlflow_port}/health") == b"OK"
        found = json.loads(
            _get(f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui-test")
        )
        assert found["experiment"]["name"] == "ui-test"
        studies = json.loads(_get(f"http://127.0.0.1:{optuna_port}/api/studies"))
        assert [s["study_name"] for s in studies["study_summaries"]] == ["ui-study"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
        assert not _port_open(mlflow_port) and not _port_open(optuna_port)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ui_refuses_a_store_that_does_not_exist(tmp_path):
    missing = tmp_path / "none" / "mlflow.db"
    proc = subprocess.run(
        [sys.executable, "-m", "mscm", "ui", "--store", str(missing)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"mscm ui: error: tracking URI 'sqlite:///{missing}': no MLflow store")
    assert not missing.parent.exists()
