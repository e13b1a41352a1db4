"""KeyedEventConsumer on the real broker: several keys are handled at once, one key's messages
never overlap and keep their order, even when they come from two topics."""
from __future__ import annotations

import asyncio
import random

from flk.events.consumer import ConsumerSettings, KeyedEventConsumer
from flk.events.envelope import make_record
from flk.events.producer import publish_many
from flk.events.registry import registry
from tests.support.builders import a_patient_key, a_visit

TOPICS = tuple(sorted({registry().topic_for(t).name for t in ("visit.recorded.v1", "risk.assessed.v1")}))


def risk(key: str, i: int) -> dict:
    return {"assessment_id": f"acg-{i}", "patient_key": key, "rub": i % 6, "acg_version": "12.1",
            "lookback_months": 18, "computed_at": "2026-03-01T10:00:00Z"}


async def test_keys_are_handled_concurrently_and_each_keys_messages_in_order_one_at_a_time(
        kafka_bootstrap, topic_prefix, producer):
    keys = [a_patient_key(i) for i in range(8)]
    records, expected = [], {k: [] for k in keys}
    for i in range(40):  # visits for all keys, then risk assessments: one key's facts span two topics
        key = keys[i % len(keys)]
        records.append(make_record("visit.recorded.v1", a_visit(patient_key=key, visit_id=f"v{i}"), source="/t"))
        expected[key].append(f"v{i}")
    await publish_many(producer, records, topic_prefix)
    await publish_many(producer, [make_record("risk.assessed.v1", risk(k, i), source="/t")
                                  for i, k in enumerate(keys)], topic_prefix)
    for i, k in enumerate(keys):
        expected[k].append(f"acg-{i}")

    seen: dict[str, list[str]] = {k: [] for k in keys}
    in_flight: set[str] = set()
    overlaps, peak = [], [0]

    async def handle(envelope) -> None:
        key = envelope.data["patient_key"]
        if key in in_flight:
            overlaps.append(key)
        in_flight.add(key)
        peak[0] = max(peak[0], len(in_flight))
        await asyncio.sleep(random.uniform(0.001, 0.01))
        seen[key].append(envelope.data.get("visit_id") or envelope.data["assessment_id"])
        in_flight.discard(key)

    consumer = KeyedEventConsumer(
        ConsumerSettings(bootstrap=kafka_bootstrap, group_id=topic_prefix + "keyed", topics=TOPICS, name="keyed",
                         topic_prefix=topic_prefix), handle=handle, dlq_producer=producer, concurrency=4)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while sum(map(len, seen.values())) < 48 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert overlaps == [], "one key's messages never run at the same time"
    for key in keys:
        visits = [x for x in seen[key] if x.startswith("v")]
        assert visits == [x for x in expected[key] if x.startswith("v")], "in order within a key"
        assert sorted(seen[key]) == sorted(expected[key])
    assert 1 < peak[0] <= 4, "several keys at once, at most `concurrency`"
