"""Where a command's CPU goes, by kind of process: Ray's daemons, the Python start of each Ray worker, each
actor, the `mscm` children, servers, the pytest processes.

bench/module_cpu.py says which test module costs the CPU; this says which processes burn it, whatever the
module. It reads /proc once a second while the command runs: every process's CPU time (utime + stime) and
its command line. A Ray worker changes its title as it goes (a bare `default_worker.py` while Python and
Ray import, then `ray::IDLE`, then `ray::<Actor>`), so each second's CPU goes to the title the process held
in it. Processes that live less than a second are missed (their CPU shows in the machine's total only),
and a process that ran before the command counts only what it burns during it.

    python3 bench/cpu_by_process.py -- make test                       # the whole suite
    python3 bench/cpu_by_process.py --top 20 -- .venv/bin/python -m pytest tests/test_tune_search.py

It prints one line per kind (CPU-s, share, processes started as it), the busy CPU-s of the whole machine
over the same time (/proc/stat), and the Ray workers that never ran an actor or a task. It needs the
standard library and Linux's /proc. It exits with the command's exit code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BEFORE_TITLE = "ray worker (before its title)"  # a worker still importing Python and Ray
IDLE = {"ray::IDLE", BEFORE_TITLE}
# Ray's own processes, known by the script they run (a worker's first title is its script, too)
RAY_SCRIPTS = {
    "default_worker.py": BEFORE_TITLE,
    "dashboard.py": "ray dashboard",
    "agent.py": "ray dashboard agent",
    "log_monitor.py": "ray log_monitor",
    "monitor.py": "ray autoscaler monitor",
}


def kind(argv: list[str]) -> str:
    """The kind of process a command line belongs to; arguments (paths, URIs) never decide it."""
    if not argv:
        return ""
    first = argv[0]
    title = re.match(r"ray::([A-Za-z_]\w*)", first)
    if title:  # a Ray worker's title: the actor's class (or the task's function), without its method
        return f"ray::{title.group(1)}"
    if first.startswith("ray-dashboard-"):  # the dashboard's head modules, one process each
        return "ray dashboard module " + first.split()[0].removeprefix("ray-dashboard-").rstrip("-0123456789")
    name = os.path.basename(first.split()[0])
    if not name.startswith("python"):
        return name.split(":")[0]  # postgres: its children are titled "postgres: user db ..."
    return _python_kind(argv[1:])


def _python_kind(args: list[str]) -> str:
    flags_with_value = {"-W", "-X", "-c", "-m"}
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] not in ("-c", "-m"):
        rest = rest[2:] if rest[0] in flags_with_value else rest[1:]
    if not rest:
        return "python"
    if rest[0] == "-c":
        code = rest[1] if len(rest) > 1 else ""
        if code.startswith("from multiprocessing"):  # a spawned child or the resource tracker
            return "python multiprocessing child"
        return "pytest-xdist worker" if "execnet" in code or "import sys;exec(" in code else "python -c"
    if rest[0] == "-m":
        module = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 and not rest[2].startswith("-") and module in ("mscm", "mlflow") else ""
        return f"{module} {sub}".strip()
    if "/runtime_env/agent/" in rest[0]:
        return "ray runtime_env agent"
    script = os.path.basename(rest[0])
    if script in ("mscm", "mlflow", "ray") and len(rest) > 1 and not rest[1].startswith("-"):
        return f"{script} {rest[1]}"
    return RAY_SCRIPTS.get(script, script)


@dataclass
class Seen:
    ticks: int
    titles: list[str]  # every title it held, in order; the last is the one it holds now
    before: bool = False  # it was running when the command started


@dataclass
class Tally:
    by_kind: dict[str, int] = field(default_factory=dict)  # clock ticks
    started: dict[str, int] = field(default_factory=dict)  # processes first seen as the kind
    procs: dict[tuple[int, int], Seen] = field(default_factory=dict)  # (pid, start time) -> what we saw

    def sample(self, pid: int, start: int, ticks: int, title: str, *, before: bool = False) -> None:
        """Record one process's CPU ticks and title now; ``before``: it ran before the command, so only
        what it burns from here on counts."""
        seen = self.procs.get((pid, start))
        if seen is None:  # a new process: its CPU so far goes to the title it has now
            self.procs[(pid, start)] = Seen(ticks, [title], before)
            if not before:
                self.by_kind[title] = self.by_kind.get(title, 0) + ticks
                self.started[title] = self.started.get(title, 0) + 1
            return
        held = seen.titles[-1]
        self.by_kind[held] = self.by_kind.get(held, 0) + ticks - seen.ticks
        seen.ticks = ticks
        if title != held:
            seen.titles.append(title)

    def idle_workers(self) -> list[Seen]:
        """Ray workers that started and never held an actor's or a task's title."""
        return [s for s in self.procs.values() if not s.before and s.titles[0] in IDLE and set(s.titles) <= IDLE]


def read_proc(pid: str) -> tuple[int, int, list[str]] | None:
    """(start time, CPU ticks, argv) of a process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = [a for a in Path(f"/proc/{pid}/cmdline").read_text().split("\0") if a]
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[11], [12]: utime, stime; fields[19]: start time (proc(5), counted from field 3)
    return int(fields[19]), int(fields[11]) + int(fields[12]), argv


def busy_ticks() -> int:
    """The machine's busy CPU ticks so far: user, nice, system, irq, softirq, steal (proc(5))."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values[i] for i in (0, 1, 2, 5, 6, 7))


def sample_all(tally: Tally, skip: set[int], *, before: bool = False) -> None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in skip:
            continue
        got = read_proc(pid)
        if got and got[2]:
            start, ticks, argv = got
            tally.sample(int(pid), start, ticks, kind(argv), before=before)


def report(tally: Tally, busy_s: float, wall_s: float, top: int) -> str:
    hz = os.sysconf("SC_CLK_TCK")
    total = sum(tally.by_kind.values()) / hz
    lines = [f"{wall_s:.0f} s wall, {busy_s:.0f} busy CPU-s on the machine, {total:.0f} CPU-s seen in processes"]
    ranked = sorted(tally.by_kind.items(), key=lambda kv: -kv[1])
    share = 100 / max(total, 1e-9)
    for name, ticks in ranked[:top]:
        secs = ticks / hz
        lines.append(f"{secs:9.1f} CPU-s {secs * share:5.1f}%  {tally.started.get(name, 0):4d} started  {name}")
    rest = sum(t for _, t in ranked[top:]) / hz
    if rest:
        lines.append(f"{rest:9.1f} CPU-s {rest * share:5.1f}%        the other {len(ranked) - top} kinds")
    idle = tally.idle_workers()
    idle_s = sum(s.ticks for s in idle) / hz
    lines.append(f"Ray workers that never ran an actor or a task: {len(idle)}, {idle_s:.1f} CPU-s")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    p.add_argument("--top", type=int, default=40, help="kinds listed (default 40)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command to run (put it after --)")
    tally, t0, b0 = Tally(), time.monotonic(), busy_ticks()
    sample_all(tally, skip={os.getpid()}, before=True)  # what already runs counts from now on
    proc = subprocess.Popen(command)
    while proc.poll() is None:
        sample_all(tally, skip={os.getpid()})
        time.sleep(args.interval)
    wall, busy = time.monotonic() - t0, (busy_ticks() - b0) / os.sysconf("SC_CLK_TCK")
    print(report(tally, busy, wall, args.top))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
