"""How long Tune's loop spends in mscm's MLflow callback per report, with a healthy `mlflow server` and
while it is away (issue 23: target p99 <= 50 ms in both).

    python bench/callback_latency.py --trials 4 --epochs 50

The callback (mscm.tune.tracking.MlflowTrialLogger) is driven as Tune drives it: a trial starts, reports
one result per epoch (a real result's keys), ends. Phase 1 runs with the server up; phase 2 kills the
server first, and it is started again only after the timing, so the writes queued meanwhile then drain.
Prints median, p99 and max per phase, and how long the drain took once the server was back.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "platform"), str(REPO / "tests")]


class _Trial(SimpleNamespace):
    """What the callback reads of a Tune trial."""

    def __str__(self) -> str:
        return self.trial_id


def _result(epoch: int) -> dict:
    keys = ("loss/total", "loss/ce", "loss/qct", "train/accuracy", "mAP", "rank1", "rank5", "rank10", "mINP")
    result = {k: 1.0 / epoch for k in keys}
    result.update({"epoch": epoch, "selection_score": 0.1 * epoch, "perf/images_per_s": 100.0})
    return result


def _drive(logger, trials: int, epochs: int, start: int) -> list[float]:
    times = []
    for i in range(start, start + trials):
        trial = _Trial(trial_id=f"bench{i:03d}", config={"loss.qct_margin": 0.5}, error_file=None)
        t0 = time.perf_counter()
        logger.log_trial_start(trial)
        times.append(time.perf_counter() - t0)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            logger.log_trial_result(epoch, trial, _result(epoch))
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        logger.log_trial_end(trial)
        times.append(time.perf_counter() - t0)
    return times


def _line(name: str, times: list[float]) -> str:
    ms = sorted(1000 * t for t in times)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {p99:.2f} | {ms[-1]:.2f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()
    from mlflow_servers import MlflowServer
    from train_configs import tiny_config

    from mscm.config import to_dict
    from mscm.tracking.mlflow_run import RunLogger
    from mscm.tune.tracking import MlflowTrialLogger

    with tempfile.TemporaryDirectory(prefix="mscm-latency-") as tmp:
        server = MlflowServer(Path(tmp) / "server").start()
        try:
            cfg = tiny_config(Path(tmp))
            parent = RunLogger(server.url, "latency", run_name="bench")
            logger = MlflowTrialLogger(
                server.url, "latency", parent.run_id, args.epochs, base=to_dict(cfg), spool_folder=f"{tmp}/spool"
            )
            healthy = _drive(logger, args.trials, args.epochs, 0)
            assert logger.writer().drain(300) == 0
            server.stop()
            away = _drive(logger, args.trials, args.epochs, args.trials)
            server.start()
            t0 = time.monotonic()
            left = logger.writer().drain(600)
            drained = time.monotonic() - t0
        finally:
            server.stop()
    print("| server | callback calls | median ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print(_line("healthy", healthy))
    print(_line("away (killed)", away))
    print(f"drain after the server came back: {drained:.1f} s, {left} writes left")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
