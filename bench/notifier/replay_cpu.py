"""Benchmark: the notifier's CPU per consumed event when a region is replayed through it.

The input is the notifier's consumed topics of a finished main-job run (`flk run ... --fresh` prints
its topic prefix, e.g. ``run336ce375.``): their records (keys, values, CloudEvents headers) are
copied once into a topic prefix of this bench's own, then the notifier runtime (consumer, outbox
relay, ticker, planner, delivery to a local SMTP sink, metrics) runs in this process against a
fresh database with the main job's settings (every unit alerted at once by email; tick, plan and
metrics every 2 s) until every event is consumed, every outbox row published and every delivery
made. Reported: the process's CPU seconds for the replay and per 1 000 consumed events, wall time,
and the load average. Run it with the code to compare on PYTHONPATH (the baseline checkout, then
this one) in the same session:

    python -m bench.notifier.replay_cpu --source-prefix run336ce375.
    py-spy record -o notifier.svg -- python -m bench.notifier.replay_cpu --source-prefix run336ce375.

The copy reads the source topics up to their end offsets at the start; nothing is written to them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from datetime import datetime, timezone

import asyncpg

from bench.notifier.alert_latency import SmtpSink
from flk.events.admin import ensure_topics
from flk.events.contracts import event_type_of
from flk.events.producer import new_producer
from flk.settings import PlatformSettings
from services.notifier.adapters.inbound import CONSUMED_EVENT_TYPES
from services.notifier.adapters.secrets import MemorySecretStore
from services.notifier.bootstrap import build_runtime, consumed_topics
from services.notifier.service_layer.routing import build_routing, set_routing
from services.notifier.settings import NotifierSettings
from tests.support.ports import free_port
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings
from tools.migrations import migrate


async def copy_topics(bootstrap: str, source_prefix: str, prefix: str, producer) -> tuple[int, set[str]]:
    """Copy the consumed topics' records (same partition, key, value, headers); the number of records
    the notifier maps to facts, and the care units their listings name."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = set(CONSUMED_EVENT_TYPES)
    relevant, units = 0, set()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic
        for topic in consumed_topics():
            parts = consumer.partitions_for_topic(source_prefix + topic) or set()
            tps = [TopicPartition(source_prefix + topic, p) for p in sorted(parts)]
            if not tps:
                continue
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if ends[tp] > 0}
            futures = []
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
                for tp, records in batches.items():
                    for r in records:
                        if r.offset >= ends[tp]:
                            continue
                        headers = list(r.headers or ())
                        event_type = event_type_of(dict(headers).get("ce_type", b"").decode())
                        if event_type in wanted:
                            relevant += 1
                            if event_type == "listing.started.v1":
                                units.add(json.loads(r.value)["care_unit_id"])
                        futures.append(await producer.send(prefix + topic, value=r.value, key=r.key,
                                                           headers=headers, partition=tp.partition))
                    if records and records[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
            await asyncio.gather(*futures)
    finally:
        await consumer.stop()
    return relevant, units


async def run(mine: Throwaway, source_prefix: str, timeout_s: float) -> dict:
    from aiosmtpd.controller import Controller

    infra = mine.settings
    dsn = await mine.database()
    await migrate(dsn)
    prefix = mine.prefix
    await ensure_topics(infra.kafka_bootstrap, prefix=prefix)
    producer = new_producer(infra.kafka_bootstrap, "bench")
    await producer.start()
    smtp = SmtpSink()
    smtp_port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
    runtime = None
    try:
        print(f"copying the notifier's topics of {source_prefix!r} ...", flush=True)
        events, units = await copy_topics(infra.kafka_bootstrap, source_prefix, prefix, producer)
        print(f"{events:,} events the notifier consumes, {len(units)} units", flush=True)
        now = datetime.now(timezone.utc)
        for unit in sorted(units):
            await set_routing(pool, build_routing(unit, unit, email_to=[f"{unit.lower()}@vardcentral.example"],
                                                  mode="immediate", quiet_hours="none", escalation_after_days=None),
                              "bench", now)
        settings = NotifierSettings(
            platform=PlatformSettings(database_url=dsn, kafka_bootstrap=infra.kafka_bootstrap, topic_prefix=prefix),
            smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_tls="none",
            tick_interval_s=2, plan_interval_s=2, metrics_refresh_s=2,  # the main job's pace
        )
        runtime = build_runtime(settings, pool, producer, secrets=MemorySecretStore({}))
        cpu0, wall0 = time.process_time(), time.monotonic()
        await runtime.start()
        deadline = wall0 + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            row = await pool.fetchrow(
                "SELECT (SELECT count(*) FROM notifier.inbox) AS consumed, "
                "(SELECT count(*) FROM notifier.outbox WHERE published_at IS NULL) AS unpublished, "
                "(SELECT count(*) FROM notifier.alert_delivery WHERE status = 'pending') AS pending, "
                "(SELECT count(*) FROM notifier.care_gap g JOIN notifier.unit_routing r USING (care_unit_id) "
                " WHERE g.resolved_at IS NULL AND NOT EXISTS (SELECT 1 FROM notifier.alert a "
                "   WHERE g.gap_id = ANY(a.gap_ids))) AS unalerted")
            if row["consumed"] >= events and not row["unpublished"] and not row["pending"] and not row["unalerted"]:
                break
        else:
            raise TimeoutError(f"not done after {timeout_s:.0f}s: {dict(row)}")
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        stats = await pool.fetchrow(
            "SELECT (SELECT count(*) FROM notifier.care_gap) AS gaps, "
            "(SELECT count(*) FROM notifier.care_gap WHERE resolved_at IS NULL) AS open_gaps, "
            "(SELECT count(*) FROM notifier.alert) AS alerts, "
            "(SELECT count(*) FROM notifier.outbox) AS outbox")
        return {"events": events, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                "cpu_ms_per_1000_events": round(1000 * 1000 * cpu / max(events, 1), 1),
                "load_average": [round(x, 1) for x in os.getloadavg()], **dict(stats)}
    finally:
        if runtime is not None:
            await runtime.stop()
        await pool.close()
        await producer.stop()
        controller.stop()


async def main(source_prefix: str, timeout_s: float) -> None:
    async with Throwaway(InfraSettings(), "bench") as mine:
        result = await run(mine, source_prefix, timeout_s)
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-prefix", required=True, help="topic prefix of a finished `flk run` (with its dot)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.source_prefix, args.timeout))
