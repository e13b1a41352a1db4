"""Benchmark: the daily goal-KPI snapshot (`listing.record_goal_kpis(date)`), the per-person definition
of migrations 0002/0004 against the set-based one of 0008, on synthetic registers of region size and
larger, in fresh databases of the `flk infra up` PostgreSQL (dropped afterwards).

For each register size: fill it with set-based SQL (tests/support/synthetic_register.py: listings,
switches, FLK assignments and changes, fictive lists, declines, SÄBO spells, deaths and moves over 18
months), recreate the old functions as ``listing.*_reference`` (read from the migration files), then
time the old snapshot on ``--old-days`` days and the new one on ``--days`` days (the same days; the
stored rows of the two are compared). On every timed day the three-pass snapshot of 0008 (0002's
record_goal_kpis over 0008's goal_kpi_*_on, as ``listing.record_goal_kpis_three_pass``) is timed beside
the one-pass snapshot of 0010, with the same comparison of the stored rows. Ratios are old / new within the same run; the load average is
printed with every figure because the machine is shared, and so is the CPU time the PostgreSQL
backend spent (from /proc, when the server runs on this machine), which other processes disturb far
less than the wall time.

    python -m bench.listing.goal_kpi_bench --persons 290000 --scale 2.5

The old snapshot grows with persons × declines, so by default it is timed on the region-size register
only (``--old-on-larger`` times it on the larger one too: expect tens of minutes).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import asyncpg

from tests.support.goal_kpi_reference import create_reference_functions, three_pass_snapshot_sql
from tests.support.synthetic_register import fill_register
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings
from tools.migrations import migrate


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of a PostgreSQL backend, when the server runs on this machine: a
    figure the other processes of a shared machine change far less than the wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stored(conn: asyncpg.Connection, function: str, day) -> tuple[float, float | None, list]:
    """Wall seconds and backend CPU seconds for one day's snapshot, and the stored rows (without
    computed_at)."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpu = backend_cpu_seconds(pid)
    started = time.perf_counter()
    await conn.fetchval(f"SELECT listing.{function}($1::date)", day)
    seconds = time.perf_counter() - started
    cpu_after = backend_cpu_seconds(pid)
    cpu_seconds = cpu_after - cpu if cpu is not None and cpu_after is not None else None
    rows = []
    for level in ("region", "unit", "list"):
        rows += [tuple(r.values())[:-1] for r in await conn.fetch(
            f"SELECT * FROM listing.goal_kpi_{level}_daily WHERE snapshot_on = $1 ORDER BY 2", day)]
    return seconds, cpu_seconds, rows


def cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


async def one_size(settings: InfraSettings, mine: Throwaway, persons: int, days: int, old_days: int) -> None:
    dsn = await mine.database()
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        today = await conn.fetchval("SELECT current_date")
        started = time.perf_counter()
        first_day = await fill_register(conn, persons, today=today)
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM listing.person) AS persons, (SELECT count(*) FROM listing.listing) AS listings, "
            "(SELECT count(*) FROM listing.flk_assignment) AS flk_assignments, "
            "(SELECT count(*) FROM listing.flk_decline) AS declines, "
            "(SELECT count(*) FROM listing.sabo_residence) AS sabo_residences, "
            "(SELECT count(*) FROM listing.care_unit) AS units, (SELECT count(*) FROM listing.doctor_list) AS lists")
        print(f"\nregister of {persons} persons filled in {time.perf_counter() - started:.1f} s ({load()}): "
              + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        await create_reference_functions(conn)
        await conn.execute(three_pass_snapshot_sql())
        step = (today - first_day).days // max(1, days)
        chosen = [today - timedelta(days=1 + i * step) for i in range(days)]
        print(f"{'day':<12} {'old s':>8} {'new s':>8} {'old/new':>8} {'old cpu s':>10} {'new cpu s':>10} "
              f"{'new cpu s per 100k persons':>27}", flush=True)
        for i, day in enumerate(chosen):
            three_s, three_cpu, three_rows = await stored(conn, "record_goal_kpis_three_pass", day)
            new_s, new_cpu, new_rows = await stored(conn, "record_goal_kpis", day)
            per_100k = "-" if new_cpu is None else f"{new_cpu / persons * 1e5:.3f}"
            print(f"{day!s:<12} three passes (0008): {three_s:.3f} s, cpu {cpu(three_cpu)} s; one pass (0010): "
                  f"{new_s:.3f} s, cpu {cpu(new_cpu)} s; ratio {three_s / new_s:.2f} (wall), "
                  + (f"{three_cpu / new_cpu:.2f} (cpu)" if three_cpu and new_cpu else "- (cpu)")
                  + ("; rows equal" if three_rows == new_rows else "; rows DIFFERENT"), flush=True)
            if i < old_days:
                old_s, old_cpu, old_rows = await stored(conn, "record_goal_kpis_reference", day)
                equal = "equal" if old_rows == new_rows else "DIFFERENT"
                print(f"{day!s:<12} {old_s:8.2f} {new_s:8.3f} {old_s / new_s:8.1f} {cpu(old_cpu):>10} {cpu(new_cpu):>10} "
                      f"{per_100k:>27}   {len(new_rows)} rows, {equal}; {load()}", flush=True)
            else:
                print(f"{day!s:<12} {'-':>8} {new_s:8.3f} {'-':>8} {'-':>10} {cpu(new_cpu):>10} "
                      f"{per_100k:>27}   {len(new_rows)} rows; {load()}", flush=True)
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    settings = InfraSettings()
    print(f"goal-KPI snapshot bench: {args.persons} persons and x{args.scale}; {load()}")
    async with Throwaway(settings, "bench") as mine:
        await one_size(settings, mine, args.persons, args.days, args.old_days)
        if args.scale > 0:
            await one_size(settings, mine, round(args.persons * args.scale), args.days,
                           args.old_days if args.old_on_larger else 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=290_000, help="region size (Västmanland ≈ 290 000)")
    parser.add_argument("--scale", type=float, default=2.5, help="the larger register, times --persons (0: none)")
    parser.add_argument("--days", type=int, default=4, help="days timed with the new snapshot")
    parser.add_argument("--old-days", type=int, default=2, help="of those, days timed with the old one too")
    parser.add_argument("--old-on-larger", action="store_true", help="time the old one on the larger register too")
    asyncio.run(main(parser.parse_args()))
