"""Processes that open one new store at the same instant take turns creating its tables (mscm.tracking.
store_lock): MLflow's backend store and Optuna's storage, on a SQLite file and on a real PostgreSQL server,
as two `mscm tune` started together on a new store do.

Without the lock these processes failed here: MLflow on SQLite in its migrations ("table ... already
exists", "Online migration expected to match one row"), MLflow on PostgreSQL two of three in every round
(``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``), Optuna on PostgreSQL (the
same) and on SQLite (``UNIQUE constraint failed: alembic_version.version_num``) in one round of three each.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow_servers import MlflowServer
from pg_server import PostgresServer, why_no_postgres
from processes import child_env

from mscm.tracking.store_lock import _lockable, creation_lock

# Each process imports mscm's store code, says so, waits for the go file, then opens the new store and
# prints what it found there: the experiment MLflow's first process made, or Optuna's (empty) study list.
_OPENERS = {
    "mlflow": """
import sys
from mscm.tracking.mlflow_run import get_or_create_experiment
from mscm.tracking.store_open import open_client
def opened(url):
    artifacts = None if url.startswith("sqlite") else sys.argv[3]  # a database store is told where
    return get_or_create_experiment(open_client(url), "mscm", url, artifacts)
""",
    "optuna": """
from mscm.tune.optuna_storage import open_storage
def opened(url):
    return len(open_storage(url, retry_s=0).get_all_studies())
""",
}
_WAIT_AND_OPEN = """
import sys, time
from pathlib import Path
url, go = sys.argv[1], Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
print(opened(url))
"""


@pytest.fixture(scope="module")
def postgres():
    """One real PostgreSQL server for the module; each test makes its own database on it."""
    if why_no_postgres() is not None:
        pytest.skip(why_no_postgres())
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def new_store(request, tmp_path, monkeypatch):
    """The URL of a store nobody has opened yet: a SQLite file to be, or a new PostgreSQL database (its
    password in PGPASSWORD, as libpq takes it, never in the URL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'store.db'}"
    pg = request.getfixturevalue("postgres")
    for name, value in pg.client_env().items():
        monkeypatch.setenv(name, value)
    database = f"new_{uuid.uuid4().hex[:12]}"
    pg.create_database(database)
    return pg.url(database)


def _open_at_once(code: str, url: str, folder: Path, processes: int = 3) -> list[tuple[int, str, str]]:
    """Start ``processes`` openers, let them all reach the open together, and return (exit, out, err) each."""
    go = folder / "go"
    argv = [sys.executable, "-c", code + _WAIT_AND_OPEN, url, str(go), str(folder / "artifacts")]
    procs = [
        subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    assert [proc.stdout.readline().strip() for proc in procs] == ["ready"] * processes
    go.touch()  # all past their imports: they open the store together
    outs = [proc.communicate(timeout=120) for proc in procs]
    return [(proc.returncode, out.strip(), err) for proc, (out, err) in zip(procs, outs)]


@pytest.mark.parametrize("new_store", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("opener", ["mlflow", "optuna"])
def test_processes_opening_one_new_store_at_once_all_open_it(opener, new_store, tmp_path):
    """Every process opens the store; MLflow's all get the one experiment, Optuna's all see no study yet."""
    results = _open_at_once(_OPENERS[opener], new_store, tmp_path)
    assert [code for code, _, _ in results] == [0, 0, 0], [err[-1500:] for _, _, err in results]
    found = {out for _, out, _ in results}
    assert len(found) == 1 and found != {""}, results
    if opener == "optuna":
        assert found == {"0"}
    if new_store.startswith("sqlite"):  # the lock is the database file itself: no lock file beside it
        assert {p.name for p in (tmp_path / "store").iterdir()} <= {"store.db", "artifacts"}


_HOLD_THEN_REPORT = """
import sys, time
from mscm.tracking.store_lock import creation_lock
print("waiting", flush=True)
with creation_lock(sys.argv[1]):
    print("got it", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(url: str, hold_s: float) -> subprocess.Popen:
    argv = [sys.executable, "-c", _HOLD_THEN_REPORT, url, str(hold_s)]
    proc = subprocess.Popen(argv, env=child_env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "waiting"
    return proc


@pytest.mark.parametrize("new_store", ["sqlite", "postgresql"], indirect=True)
def test_the_lock_keeps_a_second_process_out_until_it_is_released(new_store):
    """While this process holds the lock, another process's creation_lock waits; it gets the lock once
    this one lets go."""
    with creation_lock(new_store):
        other = _holder(new_store, 0)
        time.sleep(3)  # far longer than taking a free lock (milliseconds)
        assert other.poll() is None, "the second process got the lock while this one held it"
    assert other.stdout.readline().strip() == "got it"
    assert other.wait(timeout=60) == 0


@pytest.mark.parametrize("new_store", ["sqlite", "postgresql"], indirect=True)
def test_a_killed_holder_keeps_nobody_out(new_store):
    """A process killed while it holds the lock (SIGKILL: no cleanup of its own) frees it: the kernel
    drops a dead process's flock, PostgreSQL a dead connection's advisory locks."""
    holder = _holder(new_store, 600)
    assert holder.stdout.readline().strip() == "got it"
    holder.kill()
    holder.wait(timeout=30)
    started = time.monotonic()
    with creation_lock(new_store):
        waited = time.monotonic() - started
    assert waited < 30, f"waited {waited:.1f} s for a lock whose holder was dead"


def test_which_stores_take_a_lock(tmp_path):
    assert _lockable(f"sqlite:///{tmp_path}/a.db") == ("sqlite", tmp_path / "a.db")
    assert _lockable("postgresql+psycopg://u@127.0.0.1:5432/db") == ("postgresql", None)
    assert _lockable("postgresql://u@127.0.0.1/db")[0] == "postgresql"
    for url in ("http://127.0.0.1:5000", str(tmp_path / "mlruns"), f"file://{tmp_path}", "sqlite://", "mysql://u@h/d"):
        assert _lockable(url) == (None, None), url


def test_a_database_server_that_is_away_leaves_the_open_to_report_it(tmp_path):
    """No server on the port: the lock is skipped (no error of its own), so the store's own open meets the
    outage and reports it as it did before the lock."""
    from processes import restartable_port

    ran = []
    with creation_lock(f"postgresql+psycopg://nobody@127.0.0.1:{restartable_port()}/db"):
        ran.append(True)
    assert ran == [True]


def _hold_dataset_row(url: str, experiment_id: str, name: str, digest: str):
    """Another writer's insert of dataset (name, digest), not yet committed: a connection of its own that
    holds the row (and, on SQLite, the database's write lock) until the caller commits it."""
    row = (uuid.uuid4().hex, int(experiment_id), name, digest, "local", "{}", None, "{}")
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        return conn
    import psycopg

    conn = psycopg.connect(_libpq_url(url))
    conn.execute("INSERT INTO datasets VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", row)
    return conn


def _libpq_url(url: str) -> str:
    """A store's SQLAlchemy URL as psycopg connects to it (the password from PGPASSWORD, as the store's)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def _inserting_dataset(thread) -> bool:
    """Whether ``thread`` is inside SQLAlchemy's execute of an INSERT into datasets (waiting on the other
    writer's row, since nothing else keeps it there)."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        statement = str(frame.f_locals.get("statement", "")) if frame.f_code.co_name.startswith("do_execute") else ""
        if statement.startswith("INSERT INTO datasets"):
            return True
        frame = frame.f_back
    return False


def _race_for_a_new_dataset(
    client, url: str, experiment_id: str, log, inserting=_inserting_dataset
) -> Exception | None:
    """``log(run_id, data)`` for a dataset the experiment has not seen, while another writer's insert of it
    waits uncommitted in the database at ``url``: the call looks the dataset up (missing), then inserts it,
    and its insert waits until the other commits. ``inserting(thread)`` says when the call's insert waits
    (default: the calling thread's own frames). Returns what the call raised, or None."""
    import threading

    from mscm.tracking.datasets import DatasetInput

    data = DatasetInput("sysu-test", uuid.uuid4().hex[:16], "/data/sysu", "sysu", "test", {"test_images": 1})
    run_id = client.create_run(experiment_id).info.run_id
    holder = _hold_dataset_row(url, experiment_id, data.name, data.digest)
    raised: list[Exception] = []

    def call():
        try:
            log(run_id, data)
        except Exception as e:  # the outcome under test
            raised.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 60
    while not inserting(thread) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert inserting(thread), "the call never reached its insert of the dataset"
    holder.commit()
    thread.join(timeout=60)
    holder.close()
    if not raised:
        assert [d.dataset.digest for d in client.get_run(run_id).inputs.dataset_inputs] == [data.digest]
    return raised[0] if raised else None


def _mlflow_loses_and_log_dataset_links(client, url: str, experiment_id: str, inserting=_inserting_dataset) -> None:
    """The race run twice: MLflow's own ``log_inputs`` must fail with the duplicate (so the race is real and
    set up), and mscm's ``log_dataset`` must link the row the other writer made."""
    from mscm.tracking.datasets import log_dataset, lost_insert_race, mlflow_input

    def mlflow_alone(run_id, data):
        client.log_inputs(run_id, [mlflow_input(data)])

    def mscm(run_id, data):
        log_dataset(client, run_id, data)

    lost = _race_for_a_new_dataset(client, url, experiment_id, mlflow_alone, inserting)
    assert lost is not None and lost_insert_race(lost), lost
    assert _race_for_a_new_dataset(client, url, experiment_id, mscm, inserting) is None


@pytest.mark.parametrize("new_store", ["sqlite", "postgresql"], indirect=True)
def test_two_writers_of_one_new_dataset_both_link_it(new_store, tmp_path):
    """Two searches starting on one store both log the dataset to their parent runs at once (a fresh
    clone's CI failed so in tests/test_stores_concurrent.py: "UNIQUE constraint failed: datasets..."). MLflow
    alone loses that race; mscm.tracking.datasets.log_dataset calls again and links the row the other wrote."""
    from mscm.tracking.mlflow_run import get_or_create_experiment
    from mscm.tracking.store_open import open_client

    client = open_client(new_store)
    artifacts = None if new_store.startswith("sqlite") else str(tmp_path / "artifacts")  # a database is told
    experiment_id = get_or_create_experiment(client, "mscm", new_store, artifacts)
    _mlflow_loses_and_log_dataset_links(client, new_store, experiment_id)


def _server_inserting_dataset(url: str):
    """The ``inserting`` check for a call through a tracking server: whether a session of the database at
    ``url`` waits on a lock in an INSERT into datasets, the server's insert held by the other writer's row
    (the call's own thread only waits on HTTP)."""
    import psycopg

    def inserting(thread) -> bool:
        with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO datasets%'"
            ).fetchone()
        return row[0] > 0

    return inserting


def test_two_writers_of_one_new_dataset_through_a_tracking_server_both_link_it(postgres, tmp_path, monkeypatch):
    """The same race on a team's set-up: the searches log through a real `mlflow server` on PostgreSQL. The
    server's insert loses, and what it answers (BAD_REQUEST with the database's words) is still
    recognised, so log_dataset links the row the other writer made."""
    from mscm.tracking.mlflow_run import get_or_create_experiment
    from mscm.tracking.store_open import open_client

    for name, value in postgres.client_env().items():
        monkeypatch.setenv(name, value)
    database = f"served_{uuid.uuid4().hex[:12]}"
    postgres.create_database(database)
    db_url = postgres.url(database)
    server = MlflowServer(tmp_path / "server", backend=db_url, env=postgres.client_env()).start()
    try:
        client = open_client(server.url)
        experiment_id = get_or_create_experiment(client, "mscm", server.url, None)
        _mlflow_loses_and_log_dataset_links(client, db_url, experiment_id, _server_inserting_dataset(db_url))
    finally:
        server.stop()
