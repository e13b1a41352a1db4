"""The shared consumer's batch mode on the real broker: invalid records are dead-lettered one by
one, the valid ones of a poll reach the batch handler together, a transient failure retries the
whole batch, and any other failure falls back to handling the batch's messages one at a time."""
from __future__ import annotations

import pytest

from flk.events import dlq
from flk.events.consumer import ConsumerSettings, KeyedEventConsumer, TransientFailure
from flk.events.envelope import make_record
from flk.events.producer import publish_many
from flk.events.registry import registry
from tests.conftest import consume_all
from tests.support.builders import a_patient_key, a_visit
from tests.support.waiting import run_consumer_until

pytestmark = pytest.mark.integration

VISITS = registry().topic_for("visit.recorded.v1").name


async def run_batched(handle, batch_handler, bootstrap, prefix, producer, until, timeout_s=30.0):
    consumer = KeyedEventConsumer(
        ConsumerSettings(bootstrap=bootstrap, group_id=prefix + "batched", topics=(VISITS,), name="batched",
                         topic_prefix=prefix, max_attempts=3, backoff_initial_s=0.05),
        handle=handle, dlq_producer=producer, batch_handler=batch_handler,
    )
    await run_consumer_until(consumer, until, timeout_s)


def _records(n: int):
    return [make_record("visit.recorded.v1", a_visit(patient_key=a_patient_key(7), visit_id=f"v{i}"), source="/t")
            for i in range(n)]  # one key: one partition, in order


async def test_valid_records_reach_the_batch_handler_together_and_an_invalid_one_is_dead_lettered(
        kafka_bootstrap, topic_prefix, producer):
    records = _records(3)
    await publish_many(producer, records[:1], topic_prefix)
    await producer.send_and_wait(topic_prefix + VISITS, value=b"not an event", key=records[0].key)
    await publish_many(producer, records[1:], topic_prefix)
    batches: list[list[str]] = []
    attempts = []

    async def per_message(envelope):
        raise AssertionError("the per-message path is only for failed batches")

    async def batch(envelopes):
        attempts.append(1)
        if len(attempts) == 1:
            raise TransientFailure("database unavailable")
        batches.append([e.data["visit_id"] for e in envelopes])

    await run_batched(per_message, batch, kafka_bootstrap, topic_prefix, producer,
                      until=lambda: sum(map(len, batches)) >= 3)
    letters = await consume_all(kafka_bootstrap, topic_prefix + VISITS + ".dlq", 1)

    assert [v for b in batches for v in b] == ["v0", "v1", "v2"], "in arrival order, after the transient retry"
    assert len(letters) == 1 and letters[0].value == b"not an event"
    assert dict(letters[0].headers)[dlq.REASON].startswith(b"missing CloudEvents header")


async def test_a_failing_batch_is_handled_one_message_at_a_time_so_only_the_poison_one_is_dead_lettered(
        kafka_bootstrap, topic_prefix, producer):
    records = _records(3)
    await publish_many(producer, records, topic_prefix)
    handled: list[str] = []

    async def per_message(envelope):
        if envelope.data["visit_id"] == "v1":
            raise ZeroDivisionError("bug")
        handled.append(envelope.data["visit_id"])

    async def batch(envelopes):
        for e in envelopes:
            if e.data["visit_id"] == "v1":
                raise ZeroDivisionError("bug")
        handled.extend(e.data["visit_id"] for e in envelopes)

    await run_batched(per_message, batch, kafka_bootstrap, topic_prefix, producer, until=lambda: "v2" in handled)
    letters = await consume_all(kafka_bootstrap, topic_prefix + VISITS + ".dlq", 1)

    assert handled == ["v0", "v2"]
    assert len(letters) == 1 and letters[0].value == records[1].value
    assert dict(letters[0].headers)[dlq.REASON] == b"handler failed 3 times: ZeroDivisionError"


async def test_envelopes_a_batch_handler_leaves_over_are_handled_one_at_a_time_in_arrival_order(
        kafka_bootstrap, topic_prefix, producer):
    records = _records(4)
    await publish_many(producer, records, topic_prefix)
    together: list[str] = []
    alone: list[str] = []

    async def per_message(envelope):
        alone.append(envelope.data["visit_id"])

    async def batch(envelopes):
        together.extend(e.data["visit_id"] for e in envelopes if e.data["visit_id"] in ("v0", "v2"))
        return [e for e in envelopes if e.data["visit_id"] in ("v3", "v1")]

    await run_batched(per_message, batch, kafka_bootstrap, topic_prefix, producer, until=lambda: len(alone) >= 2)

    assert sorted(together) == ["v0", "v2"]
    assert alone == ["v1", "v3"]
