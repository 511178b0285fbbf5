"""A real, throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries (`initdb`, `pg_ctl`),
run as an unprivileged user in a temporary folder, listening on 127.0.0.1 only, with password
(scram-sha-256) authentication. It can be stopped and started again on the same port and data, as a
database that restarts under a running search. ``.ci/run`` installs the package; where it is missing
the tests that need it skip and say why."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from processes import restartable_port

USER = "mscm"  # the database role the tests connect as


def pg_bin_dir() -> str | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return str(Path(on_path).resolve().parent)  # a symlink into Debian's folder
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return str(Path(found[-1]).parent) if found else None


def why_no_postgres() -> str | None:
    """Why these tests cannot have their server here, or None."""
    if pg_bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]' or 'mscm[postgres]')"
    if os.geteuid() == 0 and _service_user() is None:
        return "running as root with no unprivileged user (postgres or nobody) to run PostgreSQL as"
    return None


def _service_user() -> str | None:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


class PostgresServer:
    """``start()``, ``stop()`` (fast shutdown) and ``url(db)``; the password is in ``password`` and
    reaches clients through ``PGPASSWORD`` (:meth:`client_env`), never through a URL unless asked."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: that is root's 0700 folder, which the server's user cannot enter.
        self.folder = Path(tempfile.mkdtemp(prefix="mscm-pg-"))
        self.data = self.folder / "data"
        self.port = restartable_port()  # it restarts on the same port
        self.password = secrets.token_urlsafe(12)
        self.bin = pg_bin_dir()
        self._user = _service_user() if os.geteuid() == 0 else None
        self._init()

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        cmd = [f"{self.bin}/{args[0]}", *args[1:]]
        if self._user:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def _init(self) -> None:
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chmod(self.folder, 0o700)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"
        )
        pwfile.unlink()
        conf = self.data / "postgresql.conf"
        with open(conf, "a") as fh:  # TCP on loopback only; the socket inside the folder, not /var/run
            fh.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.folder}'\n"
            )
            fh.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")  # a throwaway server

    def start(self, timeout_s: float = 60) -> PostgresServer:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
        )
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def dsn(self, db: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={db} password={self.password}"

    def url(self, db: str, *, with_password: bool = False, driver: str = "postgresql+psycopg") -> str:
        auth = f"{USER}:{self.password}" if with_password else USER
        return f"{driver}://{auth}@127.0.0.1:{self.port}/{db}"

    def client_env(self) -> dict[str, str]:
        """The environment a client needs: libpq reads the password from PGPASSWORD."""
        return {"PGPASSWORD": self.password}

    def dump(self, db: str) -> str:
        """Every row of ``db`` as text (pg_dump --data-only), to search for what must not be there."""
        env = {**os.environ, **self.client_env()}
        cmd = [f"{self.bin}/pg_dump", "--data-only", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, db]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
