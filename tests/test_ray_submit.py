"""`ray submit` for real: a cluster-launcher cluster with the `local` provider on 127.0.0.1 over SSH.

The test runs its own sshd (a throwaway host key and client key, its own authorized-keys file, bound
to 127.0.0.1 on a free port; the launcher reaches it through ``ssh_proxy_command``), so
``~/.ssh`` is never touched. ``ray submit`` runs the job in a login shell that sources ``~/.bashrc``,
which is how a real head node finds its Python: the test puts the venv and ``MSCM_HOME`` at the end
of ``~/.bashrc`` and restores the file, and removes what the launcher copies into the home folder
(the job script, the bootstrap config and key), whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from train_configs import TINY

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.exclusive]  # its `ray stop` ends every Ray here

REPO = Path(__file__).resolve().parent.parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
VENV_BIN = Path(sys.executable).parent
HOME = Path.home()
LAUNCHER_LEFTOVERS = ("tune_mimb.py", "ray_bootstrap_config.yaml", "ray_bootstrap_key.pem")
NAME = "submit-test"


def _missing_tools() -> list[str]:
    tools = {"sshd": SSHD, "ssh": "ssh", "ssh-keygen": "ssh-keygen", "rsync": "rsync", "nc": "nc"}
    return [name for name, path in tools.items() if not (os.path.exists(path) or shutil.which(path))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def sshd(tmp: Path):
    """An sshd on 127.0.0.1 that accepts only a fresh key; yields (port, private key path)."""
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
    shutil.copy(tmp / "client_key.pub", tmp / "authorized_keys")
    port = _free_port()
    config = tmp / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {tmp / 'host_key'}",
                f"PidFile {tmp / 'sshd.pid'}",
                f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "MaxStartups 100",
                "MaxSessions 100",
            ]
        )
        + "\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder (made at boot normally)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(tmp / "sshd.log", "w"))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"sshd did not start: {(tmp / 'sshd.log').read_text()}")
        yield port, tmp / "client_key"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextlib.contextmanager
def head_shell_environment(home: Path):
    """Append the venv and MSCM_HOME to ~/.bashrc for the launcher's login shells; restore it after."""
    bashrc = HOME / ".bashrc"
    before = bashrc.read_bytes() if bashrc.exists() else None
    leftovers = {name: (HOME / name).exists() for name in LAUNCHER_LEFTOVERS}
    block = (
        f"# added by mscm's ray submit test, removed after it\nexport PATH={VENV_BIN}:$PATH\n"
        f"export MSCM_HOME={home}\nexport RAY_TRAIN_V2_ENABLED=1\n"
    )
    bashrc.write_bytes((before or b"") + b"\n" + block.encode())  # last, so it wins over pyenv & co.
    try:
        yield
    finally:
        if before is None:
            bashrc.unlink(missing_ok=True)
        else:
            bashrc.write_bytes(before)
        for name, existed in leftovers.items():
            if not existed:
                (HOME / name).unlink(missing_ok=True)


def _cluster_config(tmp: Path, port: int, key: Path) -> Path:
    gcs_port = _free_port()
    start = (
        f"ray start --head --port={gcs_port} --num-cpus=2 --resources='{{\"TRAIN_DRIVER_RESOURCE\": 4}}' "
        "--object-store-memory=268435456 --dashboard-host=127.0.0.1 "
        "--autoscaling-config=~/ray_bootstrap_config.yaml"
    )
    config = {
        "cluster_name": f"mscm-test-{port}",
        "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []},
        "auth": {
            "ssh_user": os.environ.get("USER", "root"),
            "ssh_private_key": str(key),
            "ssh_proxy_command": f"nc 127.0.0.1 {port}",
        },
        "min_workers": 0,
        "max_workers": 0,
        "head_start_ray_commands": ["ray stop", start],
        "worker_start_ray_commands": [],
    }
    path = tmp / "local-cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _space(tmp: Path) -> Path:
    overrides = {k: v for k, v in TINY.items() if not k.startswith(("schedule.", "tracking."))}
    overrides.update({"schedule.warmup_epochs": 0, "schedule.milestones": [], "eval.trials": 1, "eval.latency_runs": 0})
    space = {
        "description": "ray submit test",
        "base": "smoke",
        "overrides": overrides,
        "parameters": {"loss.qct_margin": {"type": "float", "low": 0.3, "high": 1.2}},
        "objective": {"metric": "mAP", "direction": "maximize"},
        "budget": {"trials": 1, "epochs": 1, "scheduler": "none", "max_concurrent_trials": 1},
        "resources": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0},
        "sampler": {"name": "random", "seed": 0},
    }
    path = tmp / "submit_space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _ray(*args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([str(VENV_BIN / "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _search_runs(uri: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    parent = client.search_runs(exps, filter_string=f"tags.`mscm.search` = '{NAME}' and tags.`mscm.kind` = 'search'")
    assert len(parent) == 1
    children = client.search_runs(exps, filter_string=f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'")
    return parent[0], children


def test_ray_submit_runs_the_main_job_on_a_launcher_cluster(tmp_path):
    missing = _missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (.ci/run installs openssh-server, rsync and netcat-openbsd)")
    import ray

    if ray.is_initialized():
        ray.shutdown()
    stores = tmp_path / "stores"
    uri = f"sqlite:///{stores / 'mlflow.db'}"
    before = {name: (HOME / name).exists() for name in (*LAUNCHER_LEFTOVERS, ".bashrc")}
    bashrc_before = (HOME / ".bashrc").read_bytes() if before[".bashrc"] else None
    with sshd(tmp_path) as (port, key), head_shell_environment(tmp_path / "home"):
        config = _cluster_config(tmp_path, port, key)
        try:
            up = _ray("up", "-y", "--no-config-cache", str(config), timeout=300)
            assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
            job = _ray(
                "submit",
                str(config),
                str(REPO / "jobs" / "tune_mimb.py"),
                "--",
                "--space",
                str(_space(tmp_path)),
                "--name",
                NAME,
                "--tracking-uri",
                uri,
                "--storage-path",
                str(stores / "ray_results"),
                "--optuna-url",
                f"sqlite:///{stores / 'optuna.db'}",
                "--no-baseline",  # the baseline is tested on the shared search; this test is about the launcher
                timeout=600,
            )
            assert job.returncode == 0, job.stdout[-6000:] + job.stderr[-4000:]
            assert f"search {NAME}: 1 trials (0 failed)" in job.stdout
        finally:
            down = _ray("down", "-y", str(config), timeout=180)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    parent, children = _search_runs(uri)
    assert parent.info.status == "FINISHED"
    assert [r.info.status for r in children] == ["FINISHED"]
    assert all("best/mAP" in r.data.metrics for r in children)
    # The home folder is as it was: the launcher's copies are gone and ~/.bashrc is restored.
    assert {name: (HOME / name).exists() for name in before} == before
    assert ((HOME / ".bashrc").read_bytes() if before[".bashrc"] else None) == bashrc_before
