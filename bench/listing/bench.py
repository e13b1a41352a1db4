"""Benchmark of the listing service, each figure against a baseline measured in the same run.

Everything is real and local: the Kafka broker and PostgreSQL of `flk infra up`, a fresh database
(migrated) and a fresh topic prefix, the service's own code.

1. Commands through Kafka end to end. ``--persons`` persons at ``--units`` units; for each person a
   ``listing.request`` then a ``fast_lakarkontakt.assign`` (2 commands per person) are published to
   ``listing.commands.v1`` first; then the consumers and relay start and the clock runs until every
   command is handled (inbox) and every outbox event is published: rules + one PostgreSQL
   transaction (lock, inbox, state, outbox) per consumed chunk of commands + relay to
   ``listing.events.v1``. Baselines: the same consumer loop (envelope + contract validation, same
   concurrency) reading the same topic with its own group and doing one bare INSERT per command;
   and the consumer's batch mode doing one bare multi-row INSERT per chunk (the chunked ceiling).
2. REST latency at ``--rate`` requests/s against ``flk listing run`` in its own process, from a
   second process (bench/listing/loadgen.py, aiohttp, open loop): a mix of patient reads (``GET /patients/{key}``: access check, audit insert, record
   load) and commands (``POST /commands/...``: the same handlers). Baseline: ``GET /healthz`` (no
   database) at the same rate against the same server.

    python -m bench.listing.bench --persons 10000 --units 10 --rate 200 --duration 20
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import asyncpg

from flk.api import open_pool
from tools.migrations import migrate
from flk.events.admin import ensure_topics
from flk.events.consumer import ConsumerSettings, KeyedEventConsumer
from flk.events.envelope import make_record
from flk.events.producer import new_producer, publish_many
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings
from flk.observability.metrics import PrometheusConsumerProbe
from flk.security.pseudonym import PersonId, patient_key
from flk.security.tokens import Role, issue_token
from flk.settings import PlatformSettings
from services.listing.adapters.metrics import PrometheusListingProbe
from services.listing.adapters.reference import apply_unit_register, upsert_role
from services.listing.bootstrap import ListingRuntime, command_topics
from services.listing.settings import ListingSettings
from tests.support.ports import free_port  # noqa: E402

KEY = b"bench-pseudonymisation-key"
REGION = "19"
START = date.today() - timedelta(days=90)


def rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def unit_id(i: int) -> str:
    return f"SE2321000016-VC{i:04d}"


def doctor_id(i: int) -> str:
    return f"SE2321000016-L{i:04d}"


async def seed(dsn: str, units: int, keys: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for i in range(units):
                await apply_unit_register(conn, {
                    "care_unit_id": unit_id(i), "name": f"Vårdcentralen {i}", "region_code": REGION,
                    "contract_from": START.isoformat(), "contract_to": None, "listing_limit": None,
                    "fictive_lists": [], "recorded_at": rfc3339()}, date.today())
                await upsert_role(conn, {
                    "role_id": f"role-{i}", "practitioner_id": doctor_id(i), "care_unit_id": unit_id(i),
                    "profession": "läkare", "legitimerad": True, "employment_type": "tillsvidare",
                    "specialty": "allmanmedicin", "fte": 1.5, "valid_from": START.isoformat()})
            await conn.execute(
                "INSERT INTO listing.person (patient_key, population_status, home_region, birth_date) "
                "SELECT k, 'folkbokford', $2, date '1960-01-01' FROM unnest($1::text[]) AS k", keys, REGION)
            await conn.execute("CREATE TABLE public.bench_baseline (command_id text PRIMARY KEY, data jsonb NOT NULL)")
    finally:
        await conn.close()


def commands_for(keys: list[str], units: int) -> list:
    records = []
    for n, key in enumerate(keys):
        unit = unit_id(n % units)
        base = {"patient_key": key, "care_unit_id": unit, "requested_at": rfc3339(), "channel": "ehr"}
        records.append(make_record("listing.request.v1", {
            **base, "command_id": str(uuid.uuid4()), "origin": "active_choice", "initiated_by": "person",
            "effective_date": (START + timedelta(days=1)).isoformat()}, source="urn:bench"))
        records.append(make_record("fast_lakarkontakt.assign.v1", {
            **base, "command_id": str(uuid.uuid4()), "practitioner_id": doctor_id(n % units),
            "effective_date": (START + timedelta(days=3)).isoformat()}, source="urn:bench"))
    return records


async def wait_for(check, expected: int, timeout_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if await check() >= expected:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not done after {timeout_s:.0f}s ({await check()} of {expected})")


async def bench_commands(settings: ListingSettings, dsn: str, producer, n_commands: int,
                         concurrency: int) -> dict:
    pool = await open_pool(settings.platform, max_size=settings.pool_size)
    try:
        # -- baseline: the same consumer loop, one bare INSERT per command
        async def bare_insert(envelope) -> None:
            await pool.execute("INSERT INTO public.bench_baseline (command_id, data) VALUES ($1, $2::jsonb) "
                               "ON CONFLICT DO NOTHING", envelope.data["command_id"], json.dumps(envelope.data))

        s = settings.platform
        baseline = KeyedEventConsumer(
            ConsumerSettings(bootstrap=s.kafka_bootstrap, group_id=f"{s.topic_prefix}bench-baseline",
                             topics=command_topics(), name="bench-baseline", topic_prefix=s.topic_prefix),
            handle=bare_insert, dlq_producer=producer)
        baseline.concurrency = concurrency
        await baseline.start()
        task = asyncio.create_task(baseline.run())
        base_s = await wait_for(lambda: pool.fetchval("SELECT count(*) FROM public.bench_baseline"), n_commands, 600)
        await baseline.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        # -- baseline 2: the consumer's batch mode as the service uses it, one bare multi-row INSERT
        #    (one transaction) per consumed chunk — the ceiling of chunked handling on this machine
        async def bare_chunk_insert(envelopes) -> None:
            await pool.execute("INSERT INTO public.bench_baseline_chunked (command_id, data) "
                               "SELECT * FROM unnest($1::text[], $2::jsonb[]) ON CONFLICT DO NOTHING",
                               [e.data["command_id"] for e in envelopes], [json.dumps(e.data) for e in envelopes])

        await pool.execute("CREATE TABLE IF NOT EXISTS public.bench_baseline_chunked "
                           "(command_id text PRIMARY KEY, data jsonb NOT NULL)")
        chunked = KeyedEventConsumer(
            ConsumerSettings(bootstrap=s.kafka_bootstrap, group_id=f"{s.topic_prefix}bench-baseline-chunked",
                             topics=command_topics(), name="bench-baseline-chunked", topic_prefix=s.topic_prefix,
                             max_records=max(500, settings.command_chunk_size)),
            handle=bare_insert, dlq_producer=producer, batch_handler=bare_chunk_insert,
            batch_size=settings.command_chunk_size)
        await chunked.start()
        task = asyncio.create_task(chunked.run())
        chunked_s = await wait_for(lambda: pool.fetchval("SELECT count(*) FROM public.bench_baseline_chunked"),
                                   n_commands, 600)
        await chunked.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        # -- the service: rules + transaction (lock, inbox, state, outbox) + relay to Kafka
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        runtime = ListingRuntime(settings, pool, producer, PrometheusListingProbe(registry),
                                 PrometheusConsumerProbe(registry))
        await runtime.start(kpi_snapshots=False)

        async def done() -> int:
            handled = await pool.fetchval("SELECT count(*) FROM listing.inbox")
            pending = await pool.fetchval("SELECT count(*) FROM listing.outbox WHERE published_at IS NULL")
            return handled if pending == 0 else 0

        full_s = await wait_for(done, n_commands, 900)
        await runtime.stop()
        outcomes = await pool.fetch("SELECT outcome->>'status' AS status, count(*) AS n FROM listing.inbox GROUP BY 1")
        published = await pool.fetchval("SELECT count(*) FROM listing.outbox")
    finally:
        await pool.close()
    return {
        "commands": n_commands, "concurrency": concurrency,
        "baseline_bare_insert_per_s": round(n_commands / base_s), "service_per_s": round(n_commands / full_s),
        "ratio_service_to_baseline": round(base_s / full_s, 3),
        "baseline_chunked_bare_insert_per_s": round(n_commands / chunked_s),
        "ratio_service_to_chunked_baseline": round(chunked_s / full_s, 3), "chunk_size": settings.command_chunk_size,
        "outcomes": {r["status"]: r["n"] for r in outcomes}, "events_published": published,
    }


def loadgen(url: str, rate: float, duration: float, plan: list, token: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(plan, f)
    try:
        out = subprocess.run([sys.executable, "-m", "bench.listing.loadgen", "--url", url, "--rate", str(rate),
                              "--duration", str(duration), "--plan", f.name, "--token", token],
                             check=True, capture_output=True, text=True, timeout=duration + 120,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        return json.loads(out.stdout)
    finally:
        os.unlink(f.name)


async def serve_listing(settings: ListingSettings, port: int, log) -> subprocess.Popen:
    """`flk listing run` as an operator starts it (its own process: uvloop, httptools, access log,
    consumers and relay), against the bench's database and topics; returns once /readyz answers."""
    import aiohttp

    s = settings.platform
    env = {**os.environ, "FLK_DATABASE_URL": s.database_url.get_secret_value(), "FLK_TOPIC_PREFIX": s.topic_prefix,
           "FLK_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "FLK_LISTING_HTTP_PORT": str(port),
           "FLK_LISTING_POOL_SIZE": str(settings.pool_size),
           "FLK_LISTING_CONSUMER_CONCURRENCY": str(settings.consumer_concurrency)}
    process = subprocess.Popen([sys.executable, "-m", "tools.cli", "listing", "run", "--no-migrate"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    process.kill()
    raise RuntimeError("flk listing run did not become ready")


async def bench_rest(settings: ListingSettings, keys: list[str], fresh_keys: list[str], units: int, rate: float,
                     duration: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = issue_token(settings.platform, "SE2321000016-ADM1", Role.LISTING_ADMIN, [])
    with tempfile.TemporaryFile() as log:
        server = await serve_listing(settings, port, log)
        print(json.dumps({"api_pid": server.pid}), file=sys.stderr, flush=True)  # e.g. for py-spy
        try:
            baseline = await asyncio.to_thread(loadgen, url, rate, duration, [["healthz", "GET", "/healthz", None]],
                                               token)
            plan = []
            for n, key in enumerate(keys[: int(rate * duration * 2)]):
                plan.append(["patient_read", "GET", f"/patients/{key}", None])
                if n % 4 == 3 and fresh_keys:  # one command for every three reads
                    fresh = fresh_keys.pop()
                    plan.append(["command", "POST", "/commands/listing.request.v1", {
                        "command_id": str(uuid.uuid4()), "patient_key": fresh, "care_unit_id": unit_id(n % units),
                        "requested_at": rfc3339(), "channel": "1177", "origin": "active_choice",
                        "initiated_by": "person"}])
            service = await asyncio.to_thread(loadgen, url, rate, duration, plan, token)
        finally:
            server.terminate()
            await asyncio.to_thread(server.wait, 30)
    return {"rate_per_s": rate, "duration_s": duration, "baseline_healthz": baseline["all"], "service": service}


async def main(args: argparse.Namespace) -> None:
    infra = InfraSettings()
    async with Throwaway(infra, "bench") as mine:  # topics and database deleted afterwards
        dsn, prefix = await mine.database(), mine.prefix
        await migrate(dsn)
        await ensure_topics(infra.kafka_bootstrap, prefix=prefix)
        keys = [patient_key(PersonId("personnummer", f"1960{n:08d}"), KEY) for n in range(args.persons)]
        fresh = [patient_key(PersonId("personnummer", f"1970{n:08d}"), KEY) for n in range(int(args.rate * args.duration))]
        await seed(dsn, args.units, keys + fresh)
        settings = ListingSettings(
            platform=PlatformSettings(database_url=dsn, topic_prefix=prefix, kafka_bootstrap=infra.kafka_bootstrap),
            consumer_concurrency=args.concurrency, pool_size=args.pool)
        producer = new_producer(infra.kafka_bootstrap, client_id="bench")
        await producer.start()
        try:
            records = commands_for(keys, args.units)
            for i in range(0, len(records), 5000):
                await publish_many(producer, records[i:i + 5000], prefix)
            result = {"commands": await bench_commands(settings, dsn, producer, len(records), args.concurrency)}
            print(json.dumps(result), file=sys.stderr, flush=True)
        finally:
            await producer.stop()
        result["rest"] = await bench_rest(settings, keys, fresh, args.units, args.rate, args.duration)
        result["targets"] = {"commands_per_s": 1000, "api_p99_ms_at_200_per_s": 50}
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=10000, help="persons (2 commands each)")
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16, help="keys handled at once per consumer")
    parser.add_argument("--pool", type=int, default=20, help="database connections of the workers")
    parser.add_argument("--rate", type=float, default=200, help="REST requests per second")
    parser.add_argument("--duration", type=float, default=20, help="REST seconds per measurement")
    asyncio.run(main(parser.parse_args()))
