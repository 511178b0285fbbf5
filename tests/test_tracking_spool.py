"""The spool and its background writer (mscm.tracking.spool, .writer, .spooled_run) against a real
`mlflow server` on 127.0.0.1 that is killed mid-run and started again on the same store: the writes
made while it is away wait on disk, arrive once it is back, in order and once each; sending them all
a second time changes nothing; a store that never comes back ends in TrackingPending (exit code 75)
naming `mscm sync`, which later sends them."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from mlflow_servers import MlflowServer
from processes import child_env
from train_configs import tiny_config

pytestmark = pytest.mark.slow


def _open(spool, server, cfg, key="t00"):
    from mscm.tracking.mlflow_run import RunLogger
    from mscm.tracking.spooled_run import SpooledRun, writer_for

    parent = RunLogger(server.url, "spool-test", run_name="search")
    writer = writer_for(spool, server.url)
    run = SpooledRun(
        spool, writer, key, experiment="spool-test", run_name=f"{key} x", parent_run_id=parent.run_id, tags={"k": "v"}
    )
    run.log_config(cfg)
    return parent, writer, run


def _trial_runs(client, parent):
    return client.search_runs(
        [parent.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}'", max_results=100
    )


def test_writes_made_while_the_server_is_away_arrive_once_it_is_back(tmp_path, monkeypatch):
    """MLflow's client is told to give up after one retry (MLFLOW_HTTP_REQUEST_MAX_RETRIES=1; its default
    retries for about 4 minutes), so the outage outlasts MLflow's own retries and the writer's own
    retry loop is what carries the writes across it."""
    from mlflow import MlflowClient

    from mscm.tracking.spool import Spool
    from mscm.tracking.spooled_run import drain

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    server = MlflowServer(tmp_path / "server").start()
    spool = Spool(tmp_path / "spool")
    cfg = tiny_config(tmp_path)
    try:
        parent, writer, run = _open(spool, server, cfg)
        run.log_metrics({"loss": 1.0}, step=1)
        assert writer.drain(60) == 0
        server.stop()  # away: the next writes wait in the spool
        t0 = time.monotonic()
        for step in (2, 3):
            run.log_metrics({"loss": 1.0 / step, "bad": float("nan")}, step=step)
        run.set_tags({"mscm.trial_status": "completed"})
        run.end("FINISHED")
        assert time.monotonic() - t0 < 1.0  # the callers did not wait for the store
        time.sleep(3)
        assert spool.pending() == 4 and writer.failures >= 1  # MLflow gave up; the writer keeps them
        server.start()  # back, same port and store
        drain(spool, server.url, 120, "mscm sync ...")
        client = MlflowClient(tracking_uri=server.url)
        [r] = _trial_runs(client, parent)
        assert r.info.status == "FINISHED" and r.data.tags["mscm.trial_status"] == "completed"
        assert r.data.params["optim.lr"] == str(cfg.optim.lr)
        history = sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, "loss"))
        assert history == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
        assert "bad" not in r.data.metrics  # non-finite values are not sent

        # every record sent a second time (a crash before the cursor moved): nothing changes
        spool.mark_sent(0)
        from mscm.tracking.writer import SpoolWriter

        assert SpoolWriter(spool, server.url).send_all() == len(spool.records())
        [again] = _trial_runs(client, parent)
        assert again.info.run_id == r.info.run_id
        assert len(client.get_metric_history(r.info.run_id, "loss")) == 3
        assert again.info.status == "FINISHED"
    finally:
        server.stop()


def test_a_store_that_never_returns_ends_in_tracking_pending_and_mscm_sync_sends_the_rest(tmp_path):
    from mlflow import MlflowClient

    from mscm.errors import TrackingPending
    from mscm.tracking.spool import Spool, spool_dir
    from mscm.tracking.spooled_run import drain, stop_writer

    server = MlflowServer(tmp_path / "server").start()
    storage = tmp_path / "ray_results"
    spool = Spool(spool_dir(str(storage), "away"))
    try:
        parent, writer, run = _open(spool, server, tiny_config(tmp_path), key="t07")
        assert writer.drain(60) == 0
        server.stop()
        run.log_metrics({"loss": 0.5}, step=1)
        run.end("FINISHED")
        with pytest.raises(TrackingPending) as err:
            drain(spool, server.url, 2, f"mscm sync --search away --storage-path {storage}")
        assert err.value.exit_code == 75 and "mscm sync --search away" in err.value.hint
        assert "2 MLflow writes wait" in str(err.value)
        stop_writer(spool, server.url)  # as the search's process ends

        server.start()
        env = child_env()
        args = [sys.executable, "-m", "mscm", "sync", "--search", "away", "--storage-path", str(storage)]
        done = subprocess.run([*args, "--tracking-uri", server.url], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "2 MLflow writes sent" in done.stdout, done.stdout
        [r] = _trial_runs(MlflowClient(tracking_uri=server.url), parent)
        assert r.info.status == "FINISHED" and r.data.metrics["loss"] == 0.5
    finally:
        server.stop()


def test_a_file_copy_leaves_the_spool_once_its_upload_is_sent(tmp_path):
    """The spool keeps a copy of each file a record uploads until the store has it, then drops it: a long
    search's spool does not hold every evaluation picture twice."""
    from mlflow import MlflowClient

    from mscm.tracking.mlflow_run import RunLogger
    from mscm.tracking.spool import FILES, Spool
    from mscm.tracking.spooled_run import SpooledRun, writer_for

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spool = Spool(tmp_path / "spool")
    parent = RunLogger(uri, "spool-files", run_name="search")
    writer = writer_for(spool, uri)
    run = SpooledRun(
        spool, writer, "t00", experiment="spool-files", run_name="t00", parent_run_id=parent.run_id, tags={}
    )
    picture = tmp_path / "ranked-lists.png"
    picture.write_bytes(b"\x89PNG not really" * 100)
    run.log_artifact(str(picture), "evaluation")
    assert len(list((tmp_path / "spool" / FILES).iterdir())) == 1  # queued: the copy is what will be sent
    writer.send_all()
    assert not list((tmp_path / "spool" / FILES).iterdir())
    run_id = spool.runs()["t00"]
    assert [a.path for a in MlflowClient(uri).list_artifacts(run_id, "evaluation")] == ["evaluation/ranked-lists.png"]
    parent.end()


def test_senders_at_once_send_each_record_once_and_none_waits_for_a_dropped_file(tmp_path):
    """send_all from several threads and writers at once (the writer's own thread beside a direct call, as
    the test above makes; `mscm sync` beside a search's writer): they take turns, so no record is applied
    twice. Before, the second sender of an artifact
    found its file copy already dropped by the first and retried for ever (a fresh clone's CI hung on the
    test above, 2026-12-07)."""
    import threading

    from mlflow import MlflowClient

    from mscm.tracking.spool import FILES, Spool
    from mscm.tracking.writer import SpoolWriter

    uri, spool, parent, writer, run = _unstarted_writer(tmp_path, "spool-senders")
    for i in range(6):
        picture = tmp_path / f"picture-{i}.png"
        picture.write_bytes(b"\x89PNG not really" * 100)
        run.log_artifact(str(picture), "evaluation")
        run.log_metrics({"loss": 1.0 / (i + 1)}, step=i)
    # Two threads on one writer, and two more writers on the same folder (as `mscm sync` in another process
    # beside the search's own writer): the lock is the spool folder's, not an object's.
    writers = [writer, writer, SpoolWriter(Spool(tmp_path / "spool"), uri), SpoolWriter(Spool(tmp_path / "spool"), uri)]
    senders = [threading.Thread(target=w.send_all, daemon=True) for w in writers]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 120
    for sender in senders:
        sender.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [s for s in senders if s.is_alive()]
    for w in writers:
        w.stop()  # frees a sender stuck retrying, so a failure here does not hang the suite
    failures = [(w.failures, w.last_error) for w in writers[1:]]
    assert not stuck and all(count == 0 for count, _ in failures), (len(stuck), failures)
    assert spool.pending() == 0 and not list((tmp_path / "spool" / FILES).iterdir())
    run_id = spool.runs()["t00"]
    client = MlflowClient(uri)
    assert sorted(a.path for a in client.list_artifacts(run_id, "evaluation")) == [
        f"evaluation/picture-{i}.png" for i in range(6)
    ]
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(6))
    parent.end()


def test_an_upload_whose_spool_copy_is_gone_is_set_aside_and_the_rest_is_sent(tmp_path):
    """A file copy removed from the spool (by hand, or lost with a disk) cannot come back: its record goes
    to refused.jsonl with the reason at the first attempt, and the records behind it are sent. Before, the
    writer took FileNotFoundError for a passing fault and retried for ever, holding up everything after it."""
    import json
    import threading

    from mlflow import MlflowClient

    from mscm.tracking.spool import FILES

    uri, spool, parent, writer, run = _unstarted_writer(tmp_path, "spool-lost")
    picture = tmp_path / "ranked-lists.png"
    picture.write_bytes(b"\x89PNG not really" * 100)
    run.log_artifact(str(picture), "evaluation")
    run.log_metrics({"loss": 0.25}, step=1)
    [copy] = list((tmp_path / "spool" / FILES).iterdir())
    copy.unlink()

    sender = threading.Thread(target=writer.send_all, daemon=True)
    sender.start()
    sender.join(timeout=60)
    writer.stop()  # frees a sender stuck retrying, so a failure here does not hang the suite
    assert not sender.is_alive() and writer.failures == 0, (writer.failures, writer.last_error)
    assert spool.pending() == 0
    [refused] = [json.loads(line) for line in (tmp_path / "spool" / "refused.jsonl").read_text().splitlines()]
    assert refused["record"]["op"] == "artifact" and "is gone" in refused["error"], refused
    run_id = spool.runs()["t00"]
    client = MlflowClient(uri)
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.25]
    assert client.list_artifacts(run_id, "evaluation") == []
    parent.end()


def _unstarted_writer(tmp_path, experiment: str):
    """(uri, spool, parent run, writer, spooled run t00) on a SQLite store, the writer not started: the
    test's own threads are its only senders."""
    from mscm.tracking.mlflow_run import RunLogger
    from mscm.tracking.spool import Spool
    from mscm.tracking.spooled_run import SpooledRun
    from mscm.tracking.writer import SpoolWriter

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spool = Spool(tmp_path / "spool")
    parent = RunLogger(uri, experiment, run_name="search")
    writer = SpoolWriter(spool, uri)
    run = SpooledRun(spool, writer, "t00", experiment=experiment, run_name="t00", parent_run_id=parent.run_id, tags={})
    return uri, spool, parent, writer, run


def test_a_stopped_writer_has_no_thread_left_and_sends_nothing_more(tmp_path):
    """stop() returns once the writer's thread has ended, so whoever sends the spool next (`mscm sync`, a
    second writer) is its only sender: records marked unsent again afterwards stay unsent."""
    from mscm.tracking.spooled_run import stop_writer, writer_for

    uri, spool, parent, _, run = _unstarted_writer(tmp_path, "spool-stopped")
    writer = writer_for(spool, uri)  # the process's running writer, with its thread
    run.log_metrics({"loss": 0.5}, step=1)
    assert writer.drain(60) == 0
    stop_writer(spool, uri)
    assert not writer._thread.is_alive()
    spool.mark_sent(0)
    writer.poke()
    time.sleep(2)  # the loop polls every second: twice
    assert spool.sent() == 0 and writer.send_all() == 0
    parent.end()
