"""FHIR ingest benchmark against the real PostgreSQL and broker, with its baseline in the same run.

    python bench/ingest/bench.py [--bundles 100] [--entries 100] [--concurrency 4]

1. baseline: the same visits as native ``visit.recorded.v1`` events, ``make_record`` (schema check) and
   ``publish_many`` through the platform's producer, 100 per batch: visits/s and p50/p99 per batch;
2. ``flk ingest run`` as deployed (its own process, uvicorn, access log off), fed over HTTP with a
   bearer token: (a) bundles one after another: p50/p99 per 100-entry bundle (HTTP answer = the visits
   committed to the outbox with their audit records); (b) ``--concurrency`` clients at once: bundles/s
   and visits/s, and the time until the relay has published everything; (c) the same bundles again
   (idempotent: nothing changes, nothing is published): bundles/s;
3. the pure share: ``read_bundle`` (fhir.resources validation + mapping + pseudonymisation) per bundle,
   in this process.
Prints the figures with the load average (2-core machine shared with other work: quote ratios).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flk.events.admin import ensure_topics  # noqa: E402
from flk.events.envelope import make_record  # noqa: E402
from flk.events.producer import new_producer, publish_many  # noqa: E402
from tools.infra.prune import Throwaway  # noqa: E402
from tools.infra.settings import InfraSettings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.waiting import became_ready  # noqa: E402
from tools.migrations import migrate  # noqa: E402
from flk.settings import DEV_PSEUDONYM_KEY, PlatformSettings  # noqa: E402
from flk.security.tokens import Role, issue_token  # noqa: E402
from tests.support import fhir_examples as fx  # noqa: E402

UNITS = ["SE2321000016-VCA1", "SE2321000016-VCB2", "SE2321000016-VCC3"]
DOCTORS = [f"SE2321000016-L{i:03d}" for i in range(1, 31)]


def bundles(n: int, entries: int) -> list[dict]:
    """n batch Bundles of `entries` Encounters each (patients by logical reference, a contained
    PractitionerRole per Encounter, as a Cosmic-shaped feed sends them)."""
    out, k = [], 0
    start = datetime(2026, 1, 5, 8, 0, tzinfo=timezone(timedelta(hours=1)))
    for b in range(n):
        items = []
        for _ in range(entries):
            born = date(1930 + k % 80, 1 + k % 12, 1 + k % 28)
            enc = fx.encounter(f"bench-{k}", pnr=fx.personnummer(born, k % 997 + 1), practitioner=DOCTORS[k % 30],
                               unit=UNITS[k % 3], start=(start + timedelta(minutes=7 * k)).isoformat(),
                               klass=("AMB", "VR", "HH")[k % 3])
            items.append({"fullUrl": f"urn:uuid:bench-{k}", "resource": enc,
                          "request": {"method": "PUT", "url": f"Encounter/bench-{k}"}})
            k += 1
        out.append({"resourceType": "Bundle", "type": "batch", "entry": items})
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def baseline(bootstrap: str, prefix: str, visit_batches: list[list[dict]]) -> dict:
    producer = new_producer(bootstrap, client_id="bench-native")
    await producer.start()
    try:
        latencies = []
        t0 = time.perf_counter()
        for batch in visit_batches:
            t = time.perf_counter()
            records = [make_record("visit.recorded.v1", v, source="bench/native") for v in batch]
            await publish_many(producer, records, topic_prefix=prefix + "native.")
            latencies.append(time.perf_counter() - t)
        wall = time.perf_counter() - t0
    finally:
        await producer.stop()
    n = sum(len(b) for b in visit_batches)
    return {"visits_per_s": n / wall, "p50_ms": 1000 * pct(latencies, 0.5), "p99_ms": 1000 * pct(latencies, 0.99)}


async def run(args, mine: Throwaway) -> dict:
    import asyncpg
    import httpx

    from services.ingest.domain.request import read_bundle

    infra = mine.settings
    bootstrap = infra.kafka_bootstrap
    await ensure_topics(bootstrap, prefix=mine.prefix)
    await ensure_topics(bootstrap, prefix=mine.prefix + "native.")
    dsn = await mine.database()
    await migrate(dsn)
    data = bundles(args.bundles * 2, args.entries)  # half sequential, half concurrent
    key = DEV_PSEUDONYM_KEY.encode()

    # the pure share, and the visits the bundles mean (for the baseline)
    pure, visit_batches = [], []
    for b in data:
        t = time.perf_counter()
        read = read_bundle(b, key, 1000)
        pure.append(time.perf_counter() - t)
        visit_batches.append([{"visit_id": f"native-{e.version.encounter_id}", **e.version.visit.as_dict(),
                               "source_system": "fhir"} for e in read.entries])
    native = await baseline(bootstrap, mine.prefix, visit_batches)

    port = free_port()
    env = dict(os.environ, FLK_DATABASE_URL=dsn, FLK_KAFKA_BOOTSTRAP=bootstrap, FLK_TOPIC_PREFIX=mine.prefix,
               FLK_INGEST_HTTP_PORT=str(port), PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "tools.cli", "ingest", "run", "--no-migrate", "--no-access-log"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    token = issue_token(PlatformSettings(), "bench-ehr", Role.EHR_INTEGRATION, [])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    bodies = [json.dumps(b).encode() for b in data]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
            if not await became_ready(client, timeout_s=20):
                raise RuntimeError("flk ingest run did not start: " + server.stderr.read().decode()[-2000:])

            async def post(body: bytes) -> float:
                t = time.perf_counter()
                answer = await client.post("/fhir", content=body)
                if answer.status_code != 200 or '"201 Created"' not in answer.text and '"200 OK"' not in answer.text:
                    raise RuntimeError(f"bundle refused: {answer.status_code} {answer.text[:300]}")
                return time.perf_counter() - t

            sequential = bodies[:args.bundles]
            t0 = time.perf_counter()
            seq_lat = [await post(b) for b in sequential]
            seq_wall = time.perf_counter() - t0

            concurrent = bodies[args.bundles:]
            queue = list(concurrent)
            conc_lat: list[float] = []

            async def client_loop() -> None:
                while queue:
                    conc_lat.append(await post(queue.pop()))

            t0 = time.perf_counter()
            await asyncio.gather(*(client_loop() for _ in range(args.concurrency)))
            conc_wall = time.perf_counter() - t0
            conn = await asyncpg.connect(dsn)
            try:
                while await conn.fetchval("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL"):
                    await asyncio.sleep(0.05)
                published_wall = time.perf_counter() - t0
                published = await conn.fetchval("SELECT count(*) FROM ingest.outbox")
            finally:
                await conn.close()

            t0 = time.perf_counter()
            resend_lat = [await post(b) for b in sequential]
            resend_wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(30)
    n = args.bundles
    return {
        "bundles": n, "entries": args.entries, "concurrency": args.concurrency, "published": published,
        "native": native,
        "pure_ms": {"p50": 1000 * pct(pure, 0.5), "p99": 1000 * pct(pure, 0.99)},
        "sequential": {"bundles_per_s": n / seq_wall, "visits_per_s": n * args.entries / seq_wall,
                       "p50_ms": 1000 * pct(seq_lat, 0.5), "p99_ms": 1000 * pct(seq_lat, 0.99)},
        "concurrent": {"bundles_per_s": n / conc_wall, "visits_per_s": n * args.entries / conc_wall,
                       "p50_ms": 1000 * pct(conc_lat, 0.5), "p99_ms": 1000 * pct(conc_lat, 0.99),
                       "published_visits_per_s": n * args.entries / published_wall},
        "resend": {"bundles_per_s": n / resend_wall, "p99_ms": 1000 * pct(resend_lat, 0.99)},
        "load_average": os.getloadavg(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", type=int, default=100, help="bundles per phase")
    parser.add_argument("--entries", type=int, default=100, help="Encounters per bundle")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    load_before = os.getloadavg()
    async with Throwaway(InfraSettings(), "bench") as mine:
        r = await run(args, mine)
    s, c, nat = r["sequential"], r["concurrent"], r["native"]
    print(f"FHIR ingest, {r['bundles']} bundles of {r['entries']} Encounters per phase "
          f"(load average before {load_before[0]:.2f}, after {r['load_average'][0]:.2f})")
    print(f"  baseline (native visit events via the producer, {r['entries']} per batch): "
          f"{nat['visits_per_s']:,.0f} visits/s, p50 {nat['p50_ms']:.1f} ms, p99 {nat['p99_ms']:.1f} ms per batch")
    print(f"  read_bundle alone (validate + map + pseudonymise): p50 {r['pure_ms']['p50']:.1f} ms, "
          f"p99 {r['pure_ms']['p99']:.1f} ms per bundle")
    print(f"  one client:  {s['bundles_per_s']:.1f} bundles/s = {s['visits_per_s']:,.0f} visits/s; "
          f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms per bundle "
          f"(p99 {s['p99_ms'] / nat['p99_ms']:.1f}x the baseline's)")
    print(f"  {r['concurrency']} clients:   {c['bundles_per_s']:.1f} bundles/s = {c['visits_per_s']:,.0f} visits/s "
          f"({c['visits_per_s'] / nat['visits_per_s']:.2f}x the baseline); p50 {c['p50_ms']:.1f} ms, "
          f"p99 {c['p99_ms']:.1f} ms per bundle; all published to Kafka at {c['published_visits_per_s']:,.0f} visits/s")
    print(f"  resent (idempotent, nothing published): {r['resend']['bundles_per_s']:.1f} bundles/s, "
          f"p99 {r['resend']['p99_ms']:.1f} ms; {r['published']:,} visit events published in all")


if __name__ == "__main__":
    asyncio.run(main())
