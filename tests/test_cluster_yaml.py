"""cluster.yaml: Ray's own cluster-config validation (offline), and the facts the job relies on.

``ray up`` runs ``prepare_config`` (merge the provider's defaults) and ``validate_config`` (the
ray-schema.json schema plus cross-field checks) before it asks the cloud anything; the AWS steps
after that (node resources, IAM, subnets) need boto3 and credentials and are not run here. A socket
guard makes any network use during validation fail the test.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import socket
import tomllib
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from mscm.cli import build_parser
from mscm.raycluster import DRIVER_RESOURCE
from mscm.tune.space_loader import load_search_space

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"

EFS_MOUNT = re.compile(r"mount -t nfs4\b.*?\s(fs-[0-9a-f]+)\.efs\.([a-z0-9-]+)\.amazonaws\.com:/\s+(/[^\s)]+)", re.S)
EXPORT = re.compile(r"export (\w+)=([^'\s]+)")
PROJECT_INSTALL = re.compile(r"\bpip install\b.*\s-e\s+(~/[\w./-]+)")  # ~/mscm of ~/mscm'[postgres]'
DB_HOST_VAR = "${MSCM_DB_HOST}"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"cluster validation tried to open a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def validated(cfg: dict) -> dict:
    """What `ray up` checks before it contacts the cloud; returns the filled-out config."""
    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def full(raw) -> dict:
    return validated(raw)


def head_type(cfg: dict) -> dict:
    return cfg["available_node_types"][cfg["head_node_type"]]


def worker_types(cfg: dict) -> dict[str, dict]:
    return {k: v for k, v in cfg["available_node_types"].items() if k != cfg["head_node_type"]}


def efs_mount(cfg: dict) -> tuple[str, str, str]:
    """(file system id, region, mount point) of the NFS mount in setup_commands."""
    found = [m.groups() for cmd in cfg["setup_commands"] for m in EFS_MOUNT.finditer(cmd)]
    assert len(found) == 1, f"expected one EFS mount in setup_commands, found {found}"
    return found[0]


def exports(commands: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for cmd in commands:
        env.update(EXPORT.findall(cmd))
    return env


def under(path: str, folder: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(folder))


def database_url(url: str) -> tuple[str, str]:
    """(host, database) of a PostgreSQL URL that carries no password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg", url
    assert parts.username == "mscm" and parts.password is None, f"{url}: the password belongs in ~/.pgpass"
    return url.split("@", 1)[1].rsplit(":", 1)[0], parts.path.lstrip("/")


def command_with(commands: list[str], word: str) -> list[str]:
    hits = [c for c in commands if word in c]
    assert len(hits) == 1, f"expected one command with {word!r}, found {hits}"
    return shlex.split(hits[0])


def flag(tokens: list[str], name: str) -> str:
    """Value of ``--name=value`` or ``--name value`` in a split command line."""
    for i, tok in enumerate(tokens):
        if tok == name:
            return tokens[i + 1]
        if tok.startswith(name + "="):
            return tok[len(name) + 1 :]
    raise AssertionError(f"{name} not in {tokens}")


# -- Ray's validation ---------------------------------------------------------------------------


def test_ray_validates_the_cluster_config_offline(raw, no_network):
    cfg = validated(raw)
    assert cfg["provider"]["type"] == "aws"
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert worker_types(cfg), "no worker node types"
    # Every worker type can be launched without exceeding the global cap.
    assert sum(t["max_workers"] for t in worker_types(cfg).values()) <= cfg["max_workers"]


def _drop_node_config(cfg):
    del cfg["available_node_types"]["gpu_1x"]["node_config"]


def _unknown_top_level_key(cfg):
    cfg["max_worker"] = 3  # typo of max_workers


def _unknown_node_type_key(cfg):
    cfg["available_node_types"]["gpu_1x"]["min_worker"] = 1


def _fractional_resource(cfg):
    head_type(cfg)["resources"][DRIVER_RESOURCE] = 0.5


def _start_command_as_mapping(cfg):
    # An unquoted `- ray start --resources='{"X": 4}'` item parses as a mapping (docs/stack.md P8).
    cfg["head_start_ray_commands"].append(yaml.safe_load("""- ray start --resources='{"X": 4}'""")[0])


def _unknown_head_type(cfg):
    cfg["head_node_type"] = "no_such_type"


def _min_workers_over_cap(cfg):
    cfg["available_node_types"]["gpu_4x"]["min_workers"] = cfg["max_workers"] + 1


@pytest.mark.parametrize(
    "break_it, error, fragment",
    [
        (_drop_node_config, jsonschema.ValidationError, "'node_config' is a required property"),
        (_unknown_top_level_key, jsonschema.ValidationError, "'max_worker'"),
        (_unknown_node_type_key, jsonschema.ValidationError, "'min_worker'"),
        (_fractional_resource, jsonschema.ValidationError, "0.5 is not of type 'integer'"),
        (_start_command_as_mapping, jsonschema.ValidationError, "is not of type 'string'"),
        (_unknown_head_type, ValueError, "head_node_type"),
        (_min_workers_over_cap, ValueError, "max_workers"),
    ],
)
def test_a_broken_copy_fails_validation(raw, no_network, break_it, error, fragment):
    broken = copy.deepcopy(raw)
    break_it(broken)
    with pytest.raises(error) as info:
        validated(broken)
    assert fragment in str(info.value)


# -- what the job and the platform rely on -----------------------------------------------------


def test_only_the_head_holds_the_trial_driver_resource(full):
    head = head_type(full)
    slots = head["resources"].get(DRIVER_RESOURCE, 0)
    assert slots >= 1, f"head resources {head['resources']} lack {DRIVER_RESOURCE}"
    assert head["resources"].get("CPU") == 0, "training must stay off the head"
    for name, node in worker_types(full).items():
        assert DRIVER_RESOURCE not in node["resources"], f"{name} would take trial drivers"
        assert node["resources"].get("GPU", 0) >= 1, f"{name} has no GPU"
    # `ray start` on the head says the same as the node type (the launcher's override wins anyway).
    start = command_with(full["head_start_ray_commands"], "ray start")
    assert json.loads(flag(start, "--resources")) == {DRIVER_RESOURCE: slots}
    assert flag(start, "--num-cpus") == "0"
    assert int(flag(start, "--object-store-memory")) > 0
    worker_start = command_with(full["worker_start_ray_commands"], "ray start")
    assert flag(worker_start, "--address") == "$RAY_HEAD_IP:6379"
    assert int(flag(worker_start, "--object-store-memory")) > 0


def test_worker_types_are_spot_and_the_head_is_on_demand(full):
    assert "InstanceMarketOptions" not in head_type(full)["node_config"]
    for name, node in worker_types(full).items():
        market = node["node_config"].get("InstanceMarketOptions", {})
        assert market.get("MarketType") == "spot", f"{name} is not spot"


def test_mlflow_server_listens_on_localhost_only(full):
    server = command_with(full["head_start_ray_commands"], "--backend-store-uri")
    assert flag(server, "--host") == "127.0.0.1"
    port = flag(server, "--port")
    # The head's jobs log to that server; no other node may (127.0.0.1 is the head only there).
    head_env = exports(full["head_setup_commands"])
    worker_env = exports(full["worker_setup_commands"])
    assert head_env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{port}"
    assert "MLFLOW_TRACKING_URI" not in worker_env
    # Its store is the PostgreSQL database, its artifacts lie on the shared mount: both outlive `ray down`.
    assert database_url(flag(server, "--backend-store-uri")) == (DB_HOST_VAR, "mlflow")
    assert under(flag(server, "--artifacts-destination"), efs_mount(full)[2])
    # Supervised: systemd starts it again when it dies.
    assert server[: server.index("server")][-1].endswith("/mlflow") and "systemd-run" in server
    assert "--property=Restart=always" in server
    # The dashboard is reached the same way (ray dashboard), not on the node's public address.
    assert flag(command_with(full["head_start_ray_commands"], "ray start"), "--dashboard-host") == "127.0.0.1"


def test_every_node_installs_the_project_from_its_mounted_source(full):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mounts = full["file_mounts"]
    setup_by_node = {full["head_node_type"]: full["head_setup_commands"]}
    for name, node in worker_types(full).items():
        # A node type's own worker_setup_commands replace the merged global list.
        setup_by_node[name] = node.get("worker_setup_commands", full["worker_setup_commands"])
    for name, commands in setup_by_node.items():
        targets = [m.group(1) for c in commands for m in PROJECT_INSTALL.finditer(c)]
        assert targets, f"node type {name} does not pip install the project"
        for target in targets:
            needed = [
                "pyproject.toml",
                pyproject["project"]["readme"],
                *pyproject["tool"]["setuptools"]["packages"]["find"]["where"],
            ]
            for rel in needed:
                assert f"{target}/{rel}" in mounts, f"{target}/{rel} is not in file_mounts"
    for remote, local in mounts.items():
        if not local.startswith("~"):  # the auth token lives in the user's home, not in the repo
            assert (ROOT / local).exists(), f"file_mounts {remote}: {local} does not exist in the checkout"


def test_job_defaults_point_at_the_shared_mount(full, monkeypatch, tmp_path):
    fs_id, region, mount = efs_mount(full)
    assert region == full["provider"]["region"], "EFS address and provider.region disagree"
    common = exports(full["setup_commands"])
    for name in ("MSCM_HOME", "MSCM_STORAGE_PATH", "MSCM_DATASET_ROOT"):
        assert under(common[name], mount), f"{name}={common[name]} is not under {mount}"
    assert database_url(common["MSCM_OPTUNA_URL"]) == (DB_HOST_VAR, "optuna")
    assert common["MSCM_DB_HOST"].endswith(".rds.amazonaws.com") and "CHANGE" in common["MSCM_DB_HOST"]
    # `ray submit` runs the job on the head without an address: it must join the running cluster.
    assert exports(full["head_setup_commands"]).get("RAY_ADDRESS") == "auto"

    # The job (jobs/tune_mimb.py = `mscm tune`) reads these variables as its defaults.
    for name, value in common.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MSCM_HOME", str(tmp_path))  # no checkout there: like ~ on the head
    args = build_parser().parse_args(["tune"])
    assert args.storage_path == common["MSCM_STORAGE_PATH"]
    assert args.dataset_root == common["MSCM_DATASET_ROOT"]
    assert args.optuna_url == common["MSCM_OPTUNA_URL"]
    # The search space resolves through the installed package, and its paths lie on the mount.
    space = load_search_space(args.space)
    assert not Path(space.source).resolve().is_relative_to(tmp_path.resolve())
    if space.template.model.pretrained:
        assert under(space.template.model.pretrained, mount)
    if space.template.data.root:
        assert under(space.template.data.root, mount)
    assert space.resources.use_gpu, f"{args.space} trains on CPUs; the workers are GPU nodes"


def test_no_store_is_a_sqlite_file_and_the_password_file_is_private(raw, full):
    """SQLite on EFS is gone (docs/cluster.md, "The stores"); libpq ignores a ~/.pgpass others may read."""
    assert "sqlite" not in json.dumps(full), "a SQLite store is still configured"
    assert full["file_mounts"]["~/.pgpass"].startswith("~/"), "the password file comes from the user's home"
    setup = " ".join(full["setup_commands"])
    assert "chmod 600 ~/.pgpass" in setup
    assert not re.search(r"://[^/@\s:'\"]+:[^/@\s'\"]+@", json.dumps(full)), "a URL with a password in it"
