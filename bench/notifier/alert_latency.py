"""Benchmark: from a gap-opening event being published to the unit's SMTP server and Teams endpoint
accepting the alert (immediate mode), at a steady rate of new gaps.

Everything is real but local: the Kafka broker and PostgreSQL of `flk infra up`, a fresh database
and topic prefix, aiosmtpd on a free port, an aiohttp server standing in for the Teams Workflows
webhook, and the notifier runtime (consumer, relay, planner, delivery) in this process.

Phase 1 lists N patients (no gap: no RUB yet) and waits until they are consumed. Phase 2 publishes
one `risk.assessed` RUB 5 per patient at --rate per second; each opens a gap. An alert covers the
gaps that opened within the batching window; latency is measured per gap and channel, from the
publish of its opening event to the server accepting the alert that announced it (correlated by
the alert id in the email's Message-ID and the webhook's Idempotency-Key; alert -> gaps -> patient
from the database).

    python -m bench.notifier.alert_latency --rate 100 --duration 30 --units 20
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import asyncpg

from tools.migrations import migrate
from flk.events.admin import ensure_topics
from flk.events.envelope import make_record
from flk.events.producer import new_producer
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings
from flk.security.pseudonym import PersonId, patient_key
from flk.settings import PlatformSettings
from services.notifier.adapters.secrets import MemorySecretStore
from services.notifier.bootstrap import build_runtime
from services.notifier.service_layer.routing import build_routing, set_routing
from services.notifier.settings import NotifierSettings
from tests.support.ports import free_port  # noqa: E402

PSEUDONYM_KEY = b"bench-pseudonymisation-key"


class SmtpSink:
    def __init__(self) -> None:
        self.accepted: list[tuple[float, str]] = []  # (wall time, Message-ID)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        at = time.time()
        message_id = ""
        for line in envelope.content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
            if not line:
                break
        with self.lock:
            self.accepted.append((at, message_id))
        return "250 OK"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def main(rate: float, duration: float, units: int, batch_window: float) -> None:
    """The bench under topics and a database of its own, deleted afterwards (also after an error)."""
    async with Throwaway(InfraSettings(), "bench") as mine:
        await run(mine, rate, duration, units, batch_window)


async def run(mine: Throwaway, rate: float, duration: float, units: int, batch_window: float) -> None:
    from aiohttp import web
    from aiosmtpd.controller import Controller

    infra = mine.settings
    dsn = await mine.database()
    await migrate(dsn)
    prefix = mine.prefix
    await ensure_topics(infra.kafka_bootstrap, prefix=prefix)

    smtp = SmtpSink()
    smtp_port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()

    teams_accepted: list[tuple[float, str]] = []

    async def teams_handler(request: web.Request) -> web.Response:
        await request.read()
        teams_accepted.append((time.time(), request.headers.get("Idempotency-Key", "")))
        return web.Response(status=202)

    teams_port = free_port()
    app = web.Application()
    app.router.add_post("/hook", teams_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", teams_port).start()

    settings = NotifierSettings(
        platform=PlatformSettings(database_url=dsn, kafka_bootstrap=infra.kafka_bootstrap, topic_prefix=prefix),
        grace_days=0, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_tls="none",
        immediate_batch_window_s=batch_window, tick_interval_s=5, plan_interval_s=60,
    )
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
    producer = new_producer(infra.kafka_bootstrap, "bench")
    await producer.start()
    unit_ids = [f"SE2321000016-VC{i:03d}" for i in range(units)]
    now = datetime.now(timezone.utc)
    for i, unit in enumerate(unit_ids):
        await set_routing(pool, build_routing(unit, f"Vårdcentral {i}", email_to=[f"vc{i}@example.se"],
                                              teams_webhook_secret_ref="teams", mode="immediate",
                                              quiet_hours=None), "bench", now)
    runtime = build_runtime(settings, pool, producer,
                            secrets=MemorySecretStore({"teams": f"http://127.0.0.1:{teams_port}/hook"}))
    await runtime.start()

    n = int(rate * duration)
    keys = [patient_key(PersonId("personnummer", f"19400101{i:04d}"), PSEUDONYM_KEY) for i in range(n)]
    today = date.today()
    print(f"phase 1: listing {n} patients at {units} units ...", flush=True)
    futures = []
    for i, key in enumerate(keys):
        rec = make_record("listing.started.v1", {
            "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)), "patient_key": key,
            "care_unit_id": unit_ids[i % units], "started_on": (today - timedelta(days=30)).isoformat(),
            "responsibility_from": (today - timedelta(days=29)).isoformat(), "origin": "active_choice",
            "initiated_by": "person"}, source="urn:bench")
        futures.append(await producer.send(prefix + rec.topic, value=rec.value, key=rec.key, headers=rec.headers))
    await asyncio.gather(*futures)
    while await pool.fetchval("SELECT count(*) FROM notifier.inbox") < n:
        await asyncio.sleep(0.5)

    print(f"phase 2: {n} gap-opening events at {rate:g}/s for {duration:g} s ...", flush=True)
    published: dict[str, float] = {}
    event_ids: dict[str, str] = {}
    computed_at = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    start = time.monotonic()
    futures = []
    for i, key in enumerate(keys):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        rec = make_record("risk.assessed.v1", {
            "assessment_id": f"acg-{i}", "patient_key": key, "rub": 5, "acg_version": "12.1",
            "lookback_months": 18, "computed_at": computed_at}, source="urn:bench")
        published[key] = time.time()
        event_ids[key] = rec.event_id
        futures.append(await producer.send(prefix + rec.topic, value=rec.value, key=rec.key, headers=rec.headers))
    await asyncio.gather(*futures)
    send_elapsed = time.monotonic() - start

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alerted = await pool.fetchval("SELECT coalesce(sum(gap_count), 0) FROM notifier.alert")
        pending = await pool.fetchval("SELECT count(*) FROM notifier.alert_delivery WHERE status = 'pending'")
        if alerted >= n and pending == 0:
            break
        await asyncio.sleep(0.2)

    rows = await pool.fetch("SELECT a.alert_id, g.patient_key FROM notifier.alert a "
                            "CROSS JOIN LATERAL unnest(a.gap_ids) AS ag(gap_id) "
                            "JOIN notifier.care_gap g ON g.gap_id = ag.gap_id")
    gaps_of: dict[str, list[str]] = {}
    for r in rows:
        gaps_of.setdefault(str(r["alert_id"]), []).append(r["patient_key"])
    stats = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM notifier.care_gap) AS gaps, (SELECT count(*) FROM notifier.alert) AS alerts, "
        "(SELECT count(*) FROM notifier.delivery_attempt) AS attempts, "
        "(SELECT count(*) FROM notifier.delivery_attempt WHERE outcome <> 'delivered') AS failed_attempts")

    def latencies(accepted: list[tuple[float, str]], alert_id_of) -> list[float]:
        out = []
        for at, ident in accepted:
            for key in gaps_of.get(alert_id_of(ident), []):
                out.append(at - published[key])
        return out

    email_lat = latencies(list(smtp.accepted), lambda mid: mid.strip("<>").split(".")[0])
    teams_lat = latencies(teams_accepted, lambda k: k.split(":")[0])

    print(f"\npublished {n} gap-opening events in {send_elapsed:.1f} s ({n / send_elapsed:.0f}/s); "
          f"gaps {stats['gaps']}, alerts {stats['alerts']} ({len(smtp.accepted)} emails, {len(teams_accepted)} cards), "
          f"delivery attempts {stats['attempts']} ({stats['failed_attempts']} not delivered); "
          f"batch window {batch_window:g} s, {units} units")
    print(f"{'channel':8} {'gaps':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7} {'mean s':>7}")
    for name, values in (("email", email_lat), ("teams", teams_lat)):
        print(f"{name:8} {len(values):>6} {percentile(values, 50):7.3f} {percentile(values, 95):7.3f} "
              f"{percentile(values, 99):7.3f} {max(values, default=float('nan')):7.3f} "
              f"{statistics.fmean(values) if values else float('nan'):7.3f}")
    # where the time goes, per gap: publish -> consumed and committed (inbox) -> alert planned -> email accepted
    inbox = {r["event_id"]: float(r["t"]) for r in await pool.fetch(
        "SELECT event_id, extract(epoch FROM received_at) AS t FROM notifier.inbox WHERE event_id = ANY($1::text[])",
        list(event_ids.values()))}
    planned = {r["patient_key"]: float(r["t"]) for r in await pool.fetch(
        "SELECT g.patient_key, extract(epoch FROM a.planned_at) AS t FROM notifier.alert a "
        "CROSS JOIN LATERAL unnest(a.gap_ids) AS ag(gap_id) JOIN notifier.care_gap g ON g.gap_id = ag.gap_id")}
    email_at = {}
    for at, mid in smtp.accepted:
        for key in gaps_of.get(mid.strip("<>").split(".")[0], []):
            email_at[key] = at
    consume = [inbox[event_ids[k]] - published[k] for k in keys if event_ids[k] in inbox]
    plan = [planned[k] - inbox[event_ids[k]] for k in keys if k in planned and event_ids[k] in inbox]
    send = [email_at[k] - planned[k] for k in keys if k in email_at and k in planned]
    print(f"{'stage':28} {'p50 s':>7} {'p99 s':>7}")
    for name, values in (("publish -> consumed (txn)", consume), ("consumed -> alert planned", plan),
                         ("planned -> email accepted", send)):
        print(f"{name:28} {percentile(values, 50):7.3f} {percentile(values, 99):7.3f}")
    target = max(percentile(email_lat, 99), percentile(teams_lat, 99))
    print(f"p99 target <= 5 s: {'met' if target <= 5 else 'NOT met'} (worst channel p99 {target:.3f} s)")

    await runtime.stop()
    await runtime.teams.aclose()
    await producer.stop()
    await pool.close()
    await runner.cleanup()
    controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="new gaps per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--units", type=int, default=20, help="care units the patients are spread over")
    parser.add_argument("--batch-window", type=float, default=1.0,
                        help="immediate mode: new gaps within this window share one alert (FLK_NOTIFIER_IMMEDIATE_BATCH_WINDOW_S)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.rate, args.duration, args.units, args.batch_window))
