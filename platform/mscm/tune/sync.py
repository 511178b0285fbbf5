"""Finish a search whose MLflow store was away when it ended (``mscm sync``): send the spool's writes,
then, for a search whose parent run is still open, do what the search's end would have done
(:mod:`mscm.tune.summary`)."""

from __future__ import annotations

import dataclasses

from ..tracking.spool import Spool
from .summary import RECORD_FILE, TABLE_FILE, SearchRecord, close_orphans, known_trials, summarise


def sync_command(search: str, storage_path: str, tracking_uri: str) -> str:
    """The command that sends what search ``search`` left in its spool (the URI's password masked)."""
    from ..redact import redact

    return f"mscm sync --search {search} --storage-path {storage_path} --tracking-uri {redact(tracking_uri)}"


def sync_search(
    spool: Spool, tracking_uri: str, timeout_s: float, command: str, optuna_url: str | None = None
) -> tuple[int, bool]:
    """Returns (records sent, whether the search's record was finished here). ``command`` is what the
    error names to run again when the store is still away."""
    from ..tracking.spooled_run import drain

    before = spool.sent()
    drain(spool, tracking_uri, timeout_s, command)
    sent = spool.sent() - before
    if not (spool.folder / RECORD_FILE).is_file() or not (spool.folder / TABLE_FILE).is_file():
        return sent, False  # a confirmation's spool, or a search that has not ended
    record = SearchRecord.load(spool.folder)
    if optuna_url:  # the record keeps it with any password redacted
        record = dataclasses.replace(record, optuna_url=optuna_url)
    parent = _parent(record, tracking_uri)
    if parent is None:
        return sent, False
    table = spool.folder / TABLE_FILE
    close_orphans(record, parent, known_trials(table))
    summarise(record, parent, table)
    parent.end("FINISHED")
    return sent, True


def _parent(record: SearchRecord, tracking_uri: str):
    """The search's parent run while it is still RUNNING (a finished one is left as it is)."""
    from ..tracking.contract import search_filter
    from ..tracking.mlflow_run import RunLogger
    from ..tracking.store_open import open_client

    client = open_client(tracking_uri)
    exp = client.get_experiment_by_name(record.experiment)
    if exp is None:
        return None
    found = client.search_runs([exp.experiment_id], filter_string=search_filter(record.name), max_results=1)
    if not found or found[0].info.status != "RUNNING":
        return None
    return RunLogger(tracking_uri, record.experiment, run_name=record.name, run_id=found[0].info.run_id)
