"""Benchmark: what a pool's reset query costs per transaction — the listing service's consumers
handle each register fact in a transaction of its own (acquire, BEGIN, a few statements, COMMIT,
release), and asyncpg's default reset on release (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
RESET ALL``) is one more round trip each time. Times ``--n`` such transactions (two one-row statements
each) with the default reset and with ``flk.api.keep_session``, interleaved ``--rounds`` times, in a
throwaway database of the `flk infra up` PostgreSQL: wall time, this process's CPU and the backend's
CPU (from /proc) per transaction.

    python -m bench.listing.pool_reset_bench --n 5000 --rounds 3
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

import asyncpg

from bench.listing.goal_kpi_bench import backend_cpu_seconds, load
from flk.api import keep_session
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def one(dsn: str, n: int, reset) -> tuple[float, float, float]:
    options = {"reset": reset} if reset is not None else {}
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, **options)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        backend, cpu, started = backend_cpu_seconds(pid), own_cpu(), time.perf_counter()
        for i in range(n):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", i)
                await conn.execute("INSERT INTO t VALUES ($1)", i)
        wall = time.perf_counter() - started
        cpu = own_cpu() - cpu
        after = backend_cpu_seconds(pid)
        return wall / n * 1e6, cpu / n * 1e6, ((after - backend) / n * 1e6) if backend is not None and after else float("nan")
    finally:
        await pool.close()


async def main(args: argparse.Namespace) -> None:
    async with Throwaway(InfraSettings(), "bench") as mine:
        dsn = await mine.database()
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE UNLOGGED TABLE t (i int)")
        await conn.close()
        print(f"{'pool reset':<22} {'wall µs/tx':>11} {'client CPU µs/tx':>17} {'backend CPU µs/tx':>18}  load")
        for _ in range(args.rounds):
            for name, reset in (("asyncpg default", None), ("keep_session", keep_session)):
                wall, cpu, backend = await one(dsn, args.n, reset)
                print(f"{name:<22} {wall:11.0f} {cpu:17.0f} {backend:18.0f}  {load()}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
