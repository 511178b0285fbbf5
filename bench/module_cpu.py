"""Where the suite's CPU goes, module by module: a pytest plugin that reads the machine's busy CPU time.

The suite is bound by CPU on two cores (docs/benchmarks.md, "Test suite"), and most of that CPU is spent
outside the pytest process: Ray's actors, `mscm tune` children, servers. So the plugin reads the whole
machine's busy time from /proc/stat (user, nice, system, irq, softirq, steal) each time the module under
test changes; a module carries its own fixtures, and the session Ray's start when it is the first to ask.
Run it serially (no -n) on a quiet machine, or the figures mix:

    PYTHONPATH=bench .venv/bin/python -m pytest -p module_cpu -p no:cacheprovider -q -m "not exclusive"
    PYTHONPATH=bench .venv/bin/python -m pytest -p module_cpu -p no:cacheprovider -q -m exclusive

It prints one line per module, the costliest first: wall seconds, busy CPU-s and the share of the run's
CPU. Set MODULE_CPU_OUT=/path/file.tsv to append the rows to a file as well.
"""

from __future__ import annotations

import os
import time

import psutil
import pytest


def busy_cpu_seconds() -> float:
    """Busy CPU time of all cores since boot, in seconds: /proc/stat's user, nice, system, irq, softirq and
    steal, read through psutil (a project dependency); idle and iowait are not busy."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


class ModuleCpu:
    def __init__(self) -> None:
        self.module: str | None = None
        self.started = (0.0, 0.0)
        self.rows: list[tuple[str, float, float]] = []

    def switch(self, module: str | None) -> None:
        now = (time.monotonic(), busy_cpu_seconds())
        if self.module is not None:
            self.rows.append((self.module, now[0] - self.started[0], now[1] - self.started[1]))
        self.module, self.started = module, now

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if item.path.name != self.module:
            self.switch(item.path.name)
        yield

    def pytest_sessionfinish(self, session) -> None:
        self.switch(None)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        rows = sorted(self.rows, key=lambda row: -row[2])
        total = sum(cpu for _, _, cpu in rows) or 1.0
        terminalreporter.section("busy CPU by module (/proc/stat, the whole machine)")
        for module, wall, cpu in rows:
            terminalreporter.write_line(f"{module:<40} {wall:8.1f} s {cpu:8.1f} CPU-s {100 * cpu / total:5.1f}%")
        out = os.environ.get("MODULE_CPU_OUT")
        if out:
            with open(out, "a") as f:
                f.writelines(f"{module}\t{wall:.1f}\t{cpu:.1f}\n" for module, wall, cpu in rows)


def pytest_configure(config) -> None:
    config.pluginmanager.register(ModuleCpu(), "module_cpu_recorder")
