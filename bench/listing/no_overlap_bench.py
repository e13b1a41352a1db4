"""Benchmark: what the register's no-overlap exclusion constraints cost its inserts, as migration 0012 built
them (btree_gist over the person's key text) and as 0013 builds them (led by a 64-bit hash of the key),
against no constraint at all, in a throwaway database of the `flk infra up` PostgreSQL.

Scratch tables shaped like ``listing.listing`` (person, period) and ``listing.flk_assignment`` (person,
list, period) get ``--rows`` rows, ``--batch`` per INSERT … SELECT FROM unnest (as the listing service's
command chunks write them), one transaction each; random persons (``pk1_`` + 26 base32 characters, as
flk.security.pseudonym makes them), most with one period, every tenth with a second, later one; for the
assignments, 60 lists. Each variant's wall seconds and the PostgreSQL backend's CPU seconds are printed,
and the constraint's own cost (minus the table without one) as a ratio of the two forms. Before
timing, each constrained variant is checked to refuse an overlapping period of one person (and list).

    python -m bench.listing.no_overlap_bench --rows 300000
"""
from __future__ import annotations

import argparse
import asyncio
import random
import string
import time
from datetime import date, timedelta

import asyncpg

from bench.listing.goal_kpi_bench import backend_cpu_seconds, load
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings

PERSON = "hashtextextended(patient_key, 0) WITH =, (patient_key || '') WITH ="
VARIANTS = {
    "listing": {
        "none": None,
        "0012 (key text)": "(patient_key || '') WITH =, period WITH &&",
        "0013 (hash first)": f"{PERSON}, period WITH &&",
    },
    "flk_assignment": {
        "none": None,
        "0012 (key text)": "(patient_key || '') WITH =, (list_id || '') WITH =, period WITH &&",
        "0013 (hash first)": f"{PERSON}, (list_id || '') WITH =, period WITH &&",
    },
}


def rows_of(n: int, seed: int = 1) -> list[tuple[str, str, date, date | None]]:
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + "234567"
    rows = []
    while len(rows) < n:
        key = "pk1_" + "".join(rng.choices(alphabet, k=26))
        list_id = f"list-{rng.randrange(60):02d}"
        start = date(2024, 1, 1) + timedelta(days=rng.randrange(500))
        if len(rows) % 10 == 9:  # a second period, after the first ended
            rows.append((key, list_id, start, start + timedelta(days=30)))
            rows.append((key, list_id, start + timedelta(days=30), None))
        else:
            rows.append((key, list_id, start, None))
    return rows[:n]


async def one(conn: asyncpg.Connection, table: str, constraint: str | None, rows, batch: int) -> tuple[float, float | None]:
    await conn.execute(f"DROP TABLE IF EXISTS scratch_{table}")
    await conn.execute(f"""CREATE TABLE scratch_{table} (id bigint PRIMARY KEY, patient_key text NOT NULL,
        list_id text NOT NULL, start_on date NOT NULL, end_on date,
        period daterange GENERATED ALWAYS AS (daterange(start_on, end_on)) STORED)""")
    await conn.execute(f"CREATE INDEX ON scratch_{table} (patient_key, start_on)")
    if constraint is not None:
        await conn.execute(f"ALTER TABLE scratch_{table} ADD CONSTRAINT no_overlap EXCLUDE USING gist ({constraint})")
        await conn.execute(f"INSERT INTO scratch_{table} VALUES (-1, 'pk1_x', 'list-00', '2024-01-01', NULL)")
        try:
            await conn.execute(f"INSERT INTO scratch_{table} VALUES (-2, 'pk1_x', 'list-00', '2024-06-01', '2024-07-01')")
        except asyncpg.ExclusionViolationError:
            pass
        else:
            raise SystemExit(f"{table}: the constraint {constraint!r} let an overlapping period in")
        await conn.execute(f"DELETE FROM scratch_{table}")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpu = backend_cpu_seconds(pid)
    started = time.perf_counter()
    insert = (f"INSERT INTO scratch_{table} (id, patient_key, list_id, start_on, end_on) "
              "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::date[], $5::date[])")
    for i in range(0, len(rows), batch):
        part = rows[i:i + batch]
        async with conn.transaction():
            await conn.execute(insert, list(range(i, i + len(part))), [r[0] for r in part], [r[1] for r in part],
                               [r[2] for r in part], [r[3] for r in part])
    seconds = time.perf_counter() - started
    after = backend_cpu_seconds(pid)
    await conn.execute(f"DROP TABLE scratch_{table}")
    return seconds, (after - cpu) if cpu is not None and after is not None else None


async def main(args: argparse.Namespace) -> None:
    settings = InfraSettings()
    rows = rows_of(args.rows)
    print(f"no-overlap constraint bench: {args.rows} rows, {args.batch} per insert; {load()}")
    async with Throwaway(settings, "bench") as mine:
        conn = await asyncpg.connect(await mine.database())
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
            for table, variants in VARIANTS.items():
                timed = {}
                for name, constraint in variants.items():
                    timed[name] = await one(conn, table, constraint, rows, args.batch)
                    wall, cpu = timed[name]
                    cpu_text = f", backend {cpu:.1f} CPU-s" if cpu is not None else ""
                    print(f"  {table:15s} {name:18s} {wall:6.1f} s{cpu_text}   ({load()})")
                bare = timed["none"][0]
                old, new = timed["0012 (key text)"][0] - bare, timed["0013 (hash first)"][0] - bare
                print(f"  {table:15s} the constraint's own cost: 0012 {old:.1f} s, 0013 {new:.1f} s "
                      f"({old / new:.1f}x)" if new > 0 else f"  {table}: 0013 costs nothing measurable")
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
