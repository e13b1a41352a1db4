"""Profile: where the CPU goes when a simulated region is replayed through every service.

Runs the main job (`flk run`'s own machinery, tools/mainjob) on a region limited to ``--people`` people,
against the shared local Kafka and PostgreSQL but isolated like ``flk run --fresh`` (a throwaway topic
prefix and database, dropped afterwards; the services on ports of ``--port-base`` onwards, so another
run on the default ports is not disturbed), and measures while it runs:

* CPU seconds of every process (user + system, from /proc): the main job itself (simulation,
  publishing, waiting), each service child (listing, notifier, ingest, continuity — a service
  restarted during the run has its processes summed), and the PostgreSQL backends connected
  to this run's database (sampled every second: a backend that ends between two samples loses its
  last second at most);
* the same per 1 000 simulated events, and the wall time of each phase of the job;
* each phase's CPU-s by process and how many of the machine's cores they kept busy (which process
  bounds a phase), and every second's readings in ``OUT/timeline.csv``;
* with ``--py-spy`` (the default when py-spy is installed), a sampling profile of every Python process
  (py-spy record, non-blocking, ``--rate`` samples a second of CPU time — idle time is not sampled):
  the functions with the most samples of their own, and the packages they belong to;
* where PostgreSQL loaded ``pg_stat_statements`` (the project's own server does), the statements of this
  run's database with the most execution time.

    python -m bench.mainjob.profile_replay --people 30000

Kafka's broker and PostgreSQL's own processes (checkpointer, writers, autovacuum) are shared with
whatever else runs on the machine: their CPU is printed apart (``+ kafka``, ``+ pg server``), not
attributed to the run.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import asyncpg

CLK_TCK = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Sampler:
    """The last CPU reading of every process seen, grouped by role."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, int], float] = {}
        self.first: dict[tuple[str, int], float] = {}

    def see(self, role: str, pid: int, baseline_zero: bool = True) -> None:
        value = cpu_seconds(pid)
        if value is None:
            return
        key = (role, pid)
        if key not in self.first:
            self.first[key] = 0.0 if baseline_zero else value
        self.last[key] = value

    def by_role(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for key, value in self.last.items():
            totals[key[0]] += value - self.first[key]
        return dict(totals)


KAFKA = "kafka"
PG_BACKGROUND = "pg server"


def phase_table(phases: list[tuple[float, str]], timeline: list[tuple[float, dict[str, float]]]) -> list[str]:
    """CPU-s by process in each phase of the job (from one "replaying"/"caught up" line to the next), and
    how many of the machine's cores they kept busy: which process bounds a phase's wall time."""
    if not timeline or not phases:
        return []
    roles = sorted({r for _, by_role in timeline for r in by_role}, key=lambda r: (r in (KAFKA, PG_BACKGROUND), r))

    seconds = [t for t, _ in timeline]

    def at(t: float) -> dict[str, float]:  # the last reading at or before t
        return timeline[max(bisect.bisect_right(seconds, t) - 1, 0)][1]

    bounds = [t for t, _ in phases] + [timeline[-1][0]]
    lines = ["\nCPU-s by process in each phase (the readings of each second; cores busy = all of them / wall):",
             f"  {'from':>7} {'wall':>6}  " + " ".join(f"{r[:10]:>10}" for r in roles) + "  cores  phase"]
    for (start, text), end in zip(phases, bounds[1:]):
        if end - start < 1.0:
            continue
        a, b = at(start), at(end)
        used = {r: b.get(r, 0.0) - a.get(r, 0.0) for r in roles}
        lines.append(f"  {start:7.1f} {end - start:6.1f}  " + " ".join(f"{used[r]:10.1f}" for r in roles)
                     + f"  {sum(used.values()) / (end - start):5.2f}  {text[:60]}")
    return lines


def write_timeline(path: Path, timeline: list[tuple[float, dict[str, float]]]) -> None:
    """Each second's CPU-s by process (the differences of the cumulative readings), for plotting."""
    roles = sorted({r for _, by_role in timeline for r in by_role})
    with open(path, "w") as sink:
        sink.write(",".join(["seconds", *roles]) + "\n")
        previous: dict[str, float] = {}
        for t, by_role in timeline:
            sink.write(",".join([f"{t:.1f}", *(f"{by_role.get(r, 0.0) - previous.get(r, 0.0):.2f}"
                                                 for r in roles)]) + "\n")
            previous = by_role


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def package_of(path: str) -> str:
    """A frame's file, as the package a reader recognises (site-packages' top level, or the project's
    first two path parts)."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path:
        return "stdlib:" + path.rsplit("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
    for root in ("services/", "flk/", "tools/", "bench/"):
        if root in path:
            rest = path[path.index(root):].split("/")
            return "/".join(rest[:3]).removesuffix(".py")
    return path


#: leaf frames where a process waits for I/O in its event loop: py-spy cannot tell uvloop's (native)
#: epoll wait from work, so these samples are counted apart and the shares are of the rest
WAITING = {("Runner.run", "runners.py"), ("BaseEventLoop.run_until_complete", "base_events.py"),
           ("BaseEventLoop.run_forever", "base_events.py"), ("EpollSelector.select", "selectors.py"),
           ("select", "selectors.py")}


def summarise_profile(raw: Path, top: int, rate: int) -> list[str]:
    """The leaf functions and packages with the most samples (each line of py-spy's raw output is a
    stack, frames separated by ';', then its sample count); samples waiting in the event loop apart."""
    functions: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        leaf = stack.rsplit(";", 1)[-1]
        match = FRAME.match(leaf)
        function, file = (match["function"], match["file"]) if match else (leaf, leaf)
        if (function, file.rsplit("/", 1)[-1]) in WAITING:
            waiting += n
            continue
        total += n
        functions[f"{function} ({file.rsplit('/', 1)[-1]})"] += n
        packages[package_of(file)] += n
    if not total:
        return ["    (no samples)"]
    lines = [f"    {total} samples at work (≈ {total / rate:.0f} s), {waiting} waiting in the event loop; "
             "by package (own time):"]
    lines += [f"      {100 * n / total:5.1f} %  {name}" for name, n in packages.most_common(top)]
    lines.append("    by function (own time):")
    lines += [f"      {100 * n / total:5.1f} %  {name}" for name, n in functions.most_common(top)]
    return lines


async def backend_pids(conn: asyncpg.Connection, database: str) -> list[int]:
    return [r["pid"] for r in await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database)]


async def background_pids(conn: asyncpg.Connection) -> list[tuple[int, bool]]:
    """The server's own processes (checkpointer, background and WAL writers, autovacuum), each with whether
    it started during the run (an autovacuum worker: all its CPU counts): they work for whoever writes,
    this run included, and are counted apart."""
    return [(r["pid"], r["backend_type"] == "autovacuum worker") for r in await conn.fetch(
        "SELECT pid, backend_type FROM pg_stat_activity WHERE backend_type IN ('checkpointer', "
        "'background writer', 'walwriter', 'autovacuum launcher', 'autovacuum worker')")]


async def main(args: argparse.Namespace) -> int:
    from tools.infra.process import ManagedProcess
    from tools.infra.prune import Throwaway
    from tools.infra.settings import InfraSettings
    from tools.mainjob.cli import run_main_job
    from tools.mainjob.goals import local_today
    from tools.mainjob.job import JobConfig, MainJob

    settings = InfraSettings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the continuity worker's tables of an earlier run hold its (later) facts: like `flk run --fresh`, start empty
    shutil.rmtree(out / "state", ignore_errors=True)
    for old in out.glob("*-*.txt"):  # (an earlier run's py-spy files: report_profiles merges them all)
        old.unlink()
    py_spy = shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                        if (Path(sys.executable).parent / "py-spy").exists() else None)
    use_py_spy = args.py_spy and py_spy is not None
    if args.py_spy and py_spy is None:
        print("note: py-spy is not installed (pip install py-spy): CPU per process only", file=sys.stderr)
    sampler = Sampler()
    kafka_pid = ManagedProcess("kafka", settings.state_dir).pid()
    timeline: list[tuple[float, dict[str, float]]] = []  # (seconds from the start, CPU-s by role so far)
    spies: dict[int, subprocess.Popen] = {}
    phases: list[tuple[float, str]] = []
    events = {"sent": None}
    started = time.monotonic()

    def echo(line: str) -> None:
        phases.append((time.monotonic() - started, line))
        match = re.search(r"([\d,]+) simulated events processed", line)
        if match:
            events["sent"] = int(match[1].replace(",", ""))
        print(f"[{time.monotonic() - started:7.1f} s, load {load()}] {line}", flush=True)

    def spy(role: str, pid: int) -> None:
        if not use_py_spy or pid in spies:
            return
        spies[pid] = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", str(args.rate), "--format", "raw", "--nonblocking",
             "--output", str(out / f"{role}-{pid}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    print(f"profile of the replay: {args.people} people, preset region; load {load()}", flush=True)
    async with Throwaway(settings, "bench") as mine:
        dsn = await mine.database()
        database = mine.databases[-1]
        base = args.port_base
        config = JobConfig(
            bootstrap=settings.kafka_bootstrap, database_url=dsn, state_dir=out / "state", preset="region",
            seed=args.seed, end_date=local_today(), limit_people=args.people, topic_prefix=mine.prefix,
            listing_port=base, continuity_port=base + 1, notifier_port=base + 2, ingest_port=base + 3,
            smtp_port=base + 4, teams_port=base + 5, timeout_s=args.timeout, snapshot_every_months=args.snapshot_every)
        own = os.getpid()
        sampler.see("main job", own, baseline_zero=False)
        spy("mainjob", own)
        admin = await asyncpg.connect(settings.dsn("admin", database="postgres"))
        statements_seen = await statements_available(admin)
        jobs: list[MainJob] = []

        async def watch() -> None:
            while True:
                sampler.see("main job", own, baseline_zero=False)
                for job in jobs:
                    for name, service in list(job.services.items()):
                        if service.process is not None and service.process.returncode is None:
                            sampler.see(name, service.process.pid)
                            spy(name, service.process.pid)
                for pid in await backend_pids(admin, database):
                    sampler.see("postgres", pid)
                for pid, started_now in await background_pids(admin):
                    sampler.see(PG_BACKGROUND, pid, baseline_zero=started_now)
                if kafka_pid is not None:
                    sampler.see(KAFKA, kafka_pid, baseline_zero=False)
                timeline.append((time.monotonic() - started, sampler.by_role()))
                await asyncio.sleep(1.0)

        # run_main_job builds its MainJob itself: capture it to see its services
        original_init = MainJob.__init__

        def init(self, *a, **kw):
            original_init(self, *a, **kw)
            jobs.append(self)

        MainJob.__init__ = init
        watcher = asyncio.create_task(watch())
        try:
            code = await run_main_job(config, None, True, echo=echo)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            MainJob.__init__ = original_init
            statements = await top_statements(admin, database, args.top) if statements_seen else []
            await admin.close()
            for proc in spies.values():
                if proc.poll() is None and proc.args[3] == str(own):
                    proc.send_signal(signal.SIGINT)  # py-spy writes its profile on Ctrl-C (SIGTERM loses it)
            for proc in spies.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.terminate()
    wall = time.monotonic() - started
    sent = events["sent"]
    print(f"\n== {args.people} people, {sent or '?'} events, {wall:.0f} s wall, exit code {code}, "
          f"load at the end {load()} (on {date.today()})")
    print("phases (seconds from the start):")
    for at, line in phases:
        print(f"  {at:7.1f}  {line[:110]}")
    totals = sampler.by_role()
    broker = totals.pop(KAFKA, None)
    server = totals.pop(PG_BACKGROUND, None)
    print(f"{'process':<12} {'CPU s':>8} {'CPU s per 1 000 events':>24}")
    for role, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        per = f"{seconds / sent * 1000:.3f}" if sent else "-"
        print(f"{role:<12} {seconds:8.1f} {per:>24}")
    everything = sum(totals.values())
    print(f"{'all':<12} {everything:8.1f} {(everything / sent * 1000 if sent else 0):24.3f}")
    if broker is not None:
        print(f"{'+ ' + KAFKA:<12} {broker:8.1f}   (the shared broker: whatever else used it counts too)")
    if server is not None:
        print(f"{'+ ' + PG_BACKGROUND:<12} {server:8.1f}   (checkpoints, writers, autovacuum: the shared server's)")
    print("\n".join(phase_table(phases, timeline)))
    write_timeline(out / "timeline.csv", timeline)
    print(f"(CPU-s of each process, second by second: {out / 'timeline.csv'})")
    print("\nPostgreSQL: the statements with the most execution time in this run's database "
          "(pg_stat_statements)")
    if not statements_seen:
        print("    (pg_stat_statements is not loaded: `flk infra down && flk infra up` loads it "
              "where the server has it)")
    else:
        print("\n".join(statements) or "    (none)")
    if use_py_spy:
        report_profiles(out, args.top, args.rate)
    return code


async def statements_available(admin: asyncpg.Connection) -> bool:
    """Whether the server loaded pg_stat_statements (tools/infra/postgres.py does where it can); its view
    made in the admin's database (it reads the whole server's statements, kept per database)."""
    loaded = await admin.fetchval("SELECT 'pg_stat_statements' = ANY(string_to_array("
                                  "current_setting('shared_preload_libraries'), ', '))")
    if loaded:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return bool(loaded)


async def top_statements(admin: asyncpg.Connection, database: str, top: int) -> list[str]:
    """This run's database's statements by total execution time: share, calls, time, rows, the text."""
    rows = await admin.fetch(
        "SELECT calls, total_exec_time, rows, query FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY total_exec_time DESC", database)
    total = sum(r["total_exec_time"] for r in rows) or 1.0
    lines = [f"    {total / 1000:.1f} s of execution in {sum(r['calls'] for r in rows):,} calls of "
             f"{len(rows)} statements; the top {top}:"]
    for r in rows[:top]:
        text = " ".join(r["query"].split())
        lines.append(f"      {100 * r['total_exec_time'] / total:5.1f} %  {r['total_exec_time'] / 1000:7.1f} s  "
                     f"{r['calls']:>9,} calls  {r['rows']:>10,} rows  {text[:150]}")
    return lines


def report_profiles(out: Path, top: int, rate: int) -> None:
    """Merge each role's py-spy files (a restarted service has several) and print their summaries."""
    merged: dict[str, Path] = {}
    for path in sorted(out.glob("*-*.txt")):
        role = path.name.rsplit("-", 1)[0]
        target = out / f"profile-{role}.collapsed"
        with open(target, "a" if role in merged else "w") as sink:
            sink.write(path.read_text(errors="replace"))
        merged[role] = target
    for role, path in merged.items():
        print(f"\n{role}: py-spy, {path}")
        print("\n".join(summarise_profile(path, top, rate)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=30_000, help="the region preset limited to this many people")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--snapshot-every", type=int, default=3, help="as flk run --snapshot-every")
    parser.add_argument("--port-base", type=int, default=18610, help="the services' ports, this one and the next five")
    parser.add_argument("--timeout", type=float, default=3000.0)
    parser.add_argument("--py-spy", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rate", type=int, default=25, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", default="/tmp/flk-profile-replay")
    parser.add_argument("--report-only", action="store_true", help="summarise the py-spy files already in --out")
    parsed = parser.parse_args()
    if parsed.report_only:
        report_profiles(Path(parsed.out), parsed.top, parsed.rate)
        sys.exit(0)
    sys.exit(asyncio.run(main(parsed)))
