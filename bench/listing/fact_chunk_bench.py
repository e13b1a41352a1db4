"""Benchmark: the listing service's register facts one transaction each vs in chunks (issue 15).

Takes the listing's facts (units, roles, the population register, SÄBO residences, ACG risk
assessments) of the simulated ``region`` preset limited to ``--people``, in their order, the first
``--facts`` of them, and handles them into a fresh migrated database of the `flk infra up`
PostgreSQL two ways, interleaved ``--rounds`` times:

* ``per fact`` — ``dispatch.handle_message`` per fact, one transaction each (the facts consumer
  before: a pool with the service's ``keep_session`` reset);
* ``chunks`` — ``fact_chunks.handle_fact_chunk`` per ``--chunk`` facts, what it leaves over one at
  a time (the facts consumer now).

It measures the CPU of this process (the handlers, asyncpg) and of the PostgreSQL backend (from
/proc, one connection), per 1 000 facts, and checks that both ways leave the same register (rows
per table, outbox events). Envelope decoding and the Kafka client are the same either way and not
included.

    python -m bench.listing.fact_chunk_bench --people 3000 --facts 8000 --rounds 2
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import time
import uuid
from datetime import datetime, timezone

import asyncpg

from bench.listing.goal_kpi_bench import backend_cpu_seconds, load
from flk.api import keep_session
from services.listing.service_layer.dispatch import handle_message
from services.listing.service_layer.fact_chunks import handle_fact_chunk
from services.listing.service_layer.handlers import FACT_HANDLERS, Deps, InvalidMessage, Message
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings
from tools.migrations import migrate

TABLES = ("person", "risk_assessment", "sabo_residence", "listing", "flk_assignment", "care_unit",
          "practitioner_role", "doctor_list", "inbox", "history", "outbox")


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def region_facts(people: int, limit: int) -> list[Message]:
    from tools.simulator.generate import Simulation

    now = datetime.now(timezone.utc)
    out: list[Message] = []
    for i, e in enumerate(Simulation("region", seed=42, limit_people=people).events()):
        if e.event_type in FACT_HANDLERS:
            out.append(Message(str(uuid.uuid5(uuid.NAMESPACE_URL, f"fact-bench/{i}")), e.event_type, e.data, now))
            if len(out) >= limit:
                break
    return out


async def per_fact(messages: list[Message], deps: Deps, chunk: int) -> int:
    dead = 0
    for msg in messages:
        try:
            await handle_message(msg, deps)
        except InvalidMessage:
            dead += 1
    return dead


async def in_chunks(messages: list[Message], deps: Deps, chunk: int) -> int:
    dead = 0
    for start in range(0, len(messages), chunk):
        part = messages[start:start + chunk]
        try:
            alone = [part[i] for i in (await handle_fact_chunk(part, deps)).leftover]
        except Exception:  # noqa: BLE001 - as the consumer: the chunk again, one fact at a time
            alone = part
        dead += await per_fact(alone, deps, chunk)
    return dead


async def run(throwaway: Throwaway, messages: list[Message], way, chunk: int) -> dict:
    dsn = await throwaway.database()
    await migrate(dsn)
    # one backend for the whole run (asyncpg replaces a connection after max_queries, 50 000 by default)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, reset=keep_session, max_queries=10**9)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        deps = Deps(pool=pool, profile_name="national", timezone="Europe/Stockholm",
                    clock=lambda: datetime(2026, 12, 4, 12, tzinfo=timezone.utc))
        backend, cpu, started = backend_cpu_seconds(pid), own_cpu(), time.perf_counter()
        dead = await way(messages, deps, chunk)
        wall, cpu = time.perf_counter() - started, own_cpu() - cpu
        after = backend_cpu_seconds(pid)
        async with pool.acquire() as conn:
            counts = {t: await conn.fetchval(f"SELECT count(*) FROM listing.{t}") for t in TABLES}
            counts["outbox events"] = tuple(r["event_type"] for r in await conn.fetch(
                "SELECT event_type FROM listing.outbox ORDER BY id"))
        per_k = 1000 / len(messages)
        return {"wall": wall * per_k, "client": cpu * per_k,
                "backend": (after - backend) * per_k if backend is not None and after is not None else float("nan"),
                "dead": dead, "counts": counts}
    finally:
        await pool.close()


async def main(args: argparse.Namespace) -> None:
    messages = region_facts(args.people, args.facts)
    mix = collections.Counter(m.message_type for m in messages)
    print(f"{len(messages)} facts of the region preset ({args.people} people): "
          + ", ".join(f"{t} {n}" for t, n in mix.most_common()))
    print(f"{'way':<9} {'wall s/1k':>10} {'client CPU s/1k':>16} {'backend CPU s/1k':>17} {'total':>7}  load")
    results: dict[str, list[dict]] = {"per fact": [], "chunks": []}
    async with Throwaway(InfraSettings(), "bench") as mine:
        for _ in range(args.rounds):
            for name, way in (("per fact", per_fact), ("chunks", in_chunks)):
                r = await run(mine, messages, way, args.chunk)
                results[name].append(r)
                print(f"{name:<9} {r['wall']:>10.3f} {r['client']:>16.3f} {r['backend']:>17.3f} "
                      f"{r['client'] + r['backend']:>7.3f}  {load()}", flush=True)
    same = all(r["counts"] == results["per fact"][0]["counts"] and r["dead"] == results["per fact"][0]["dead"]
               for rs in results.values() for r in rs)
    best = {name: min(rs, key=lambda r: r["client"] + r["backend"]) for name, rs in results.items()}
    total = {name: r["client"] + r["backend"] for name, r in best.items()}
    print(f"best of {args.rounds}: per fact {total['per fact']:.3f}, chunks {total['chunks']:.3f} CPU-s per 1 000 "
          f"facts: {total['per fact'] / total['chunks']:.1f}x less (client {best['per fact']['client']:.3f} -> "
          f"{best['chunks']['client']:.3f}, backend {best['per fact']['backend']:.3f} -> "
          f"{best['chunks']['backend']:.3f}); same register both ways: {same}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--facts", type=int, default=8000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
