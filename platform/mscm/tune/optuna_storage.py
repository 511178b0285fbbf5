"""The Optuna study's storage for a search: an RDB storage that survives a database restart and never
pickles a password.

- On a database server (PostgreSQL, MySQL), connections are checked before use (``pool_pre_ping``), and a
  call that fails because the connection dropped or the server is away is retried with backoff for up to
  ``retry_s`` seconds. A search on a cluster outlives its database's restarts and fail-overs.
- Tune pickles the searcher, and the storage with it, into its experiment state on every checkpoint.
  A password given inside the URL stays in this process's memory only: the pickled copy has none, and a
  resumed search (or libpq, from ``PGPASSWORD`` or ``~/.pgpass``) supplies it again.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from ..tracking.store_lock import creation_lock

DEFAULT_RETRY_S = 900.0  # a managed database's fail-over or a restart takes seconds to minutes
_PASSWORDS: dict[str, str] = {}  # password-free URL -> the password given in this process


def _with_password(url: str, password: str | None) -> str:
    """``url`` with this password (None: none), as a string that keeps the rest verbatim."""
    return make_url(url)._replace(password=password).render_as_string(hide_password=False)  # .set() ignores None


def _transient(error: BaseException) -> bool:
    """A dropped connection or an unreachable server, not a bad statement."""
    cause = error.__cause__ if isinstance(error, StorageInternalError) else error
    if isinstance(cause, OperationalError):
        return True
    return isinstance(cause, DBAPIError) and bool(cause.connection_invalidated)


def _retrying(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        deadline, delay, told = time.monotonic() + self.retry_s, 0.5, False
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - only transient database errors are retried
                if not _transient(e) or time.monotonic() + delay > deadline:
                    raise
                if not told:
                    print(
                        f"Optuna storage unreachable ({type(e.__cause__ or e).__name__}); retrying for up to "
                        f"{self.retry_s:.0f} s",
                        file=sys.stderr,
                    )
                    told = True
                self.remove_session()  # drop the broken session; the pool re-checks its connections
                time.sleep(delay)
                delay = min(delay * 2, 15.0)

    return call


class SearchStorage(RDBStorage):
    """:class:`optuna.storages.RDBStorage` with connection checks, retries and a password-free pickle."""

    def __init__(self, url: str, *, retry_s: float = DEFAULT_RETRY_S) -> None:
        parsed = make_url(url)
        server = parsed.get_backend_name() != "sqlite"
        self.retry_s = retry_s if server else 0.0  # SQLite has no connection to lose
        if parsed.password:
            _PASSWORDS[_with_password(url, None)] = parsed.password
        super().__init__(url, engine_kwargs={"pool_pre_ping": True} if server else None)
        # The engine keeps the password; the attribute that RDBStorage pickles does not.
        self.url = _with_password(url, None)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        bare = state["url"]
        super().__setstate__({**state, "url": _with_password(bare, _PASSWORDS.get(bare))})
        self.url = bare


# Every storage call Optuna makes goes through the retry: BaseStorage's public API, and the private calls
# that Optuna's cache in front of an RDB storage (optuna/storages/_cached_storage.py) makes directly.
_CACHE_CALLS = ("_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials", "_set_trial_param")
for _name in [n for n, m in vars(BaseStorage).items() if callable(m) and not n.startswith("_")] + list(_CACHE_CALLS):
    if _name in vars(RDBStorage) and _name != "remove_session":
        setattr(SearchStorage, _name, _retrying(vars(RDBStorage)[_name]))


def open_storage(url: str, *, retry_s: float = DEFAULT_RETRY_S) -> SearchStorage:
    """The search's storage at ``url`` (a SQLAlchemy URL, checked by the preflight), opened under the store's
    creation lock: Optuna creates a new database's tables in the constructor, and two searches doing that
    at once fail (mscm.tracking.store_lock)."""
    with creation_lock(url):
        return SearchStorage(url, retry_s=retry_s)


__all__ = ["SearchStorage", "open_storage", "DEFAULT_RETRY_S"]
