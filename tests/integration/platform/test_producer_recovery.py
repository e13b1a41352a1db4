"""The shared producer on the real broker: a send the broker refused poisons an idempotent aiokafka
producer (its sequence numbers are out of step from then on: what a broker restart can also cause);
flk's producer replaces itself, so the next send is delivered."""
from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber

from flk.events.producer import _aiokafka_producer, new_producer

SMALL_LIMIT = 2048  # bytes per record batch the topic accepts


@pytest.fixture
async def strict_topic(kafka_bootstrap):
    """One partition that refuses record batches over SMALL_LIMIT bytes (the client does not know)."""
    name = f"t{uuid.uuid4().hex[:10]}.producer-recovery"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"max.message.bytes": str(SMALL_LIMIT)})])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def values_on(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        values = []
        while await consumer.position(tp) < end:
            for part in (await consumer.getmany(timeout_ms=500)).values():
                values += [r.value for r in part]
        return values
    finally:
        await consumer.stop()


async def test_a_plain_idempotent_producer_stays_broken_after_the_broker_refused_a_send(kafka_bootstrap,
                                                                                       strict_topic):
    producer = _aiokafka_producer(kafka_bootstrap, "tests-plain")
    await producer.start()
    try:
        await producer.send_and_wait(strict_topic, b"before", partition=0)  # the broker knows its sequence
        with pytest.raises(KafkaError):
            await producer.send_and_wait(strict_topic, b"x" * (4 * SMALL_LIMIT), partition=0)
        with pytest.raises(OutOfOrderSequenceNumber):
            await producer.send_and_wait(strict_topic, b"small", partition=0)
    finally:
        await producer.stop()


async def test_after_a_failed_send_the_next_send_goes_through_a_new_producer_and_is_delivered(kafka_bootstrap,
                                                                                            strict_topic):
    producer = new_producer(kafka_bootstrap, "tests-recovering")
    producer.backoff_initial_s = 0.01
    await producer.start()
    try:
        await producer.send_and_wait(strict_topic, b"before", partition=0)
        with pytest.raises(KafkaError):  # the caller still learns that this one failed
            await producer.send_and_wait(strict_topic, b"x" * (4 * SMALL_LIMIT), partition=0)
        await producer.send_and_wait(strict_topic, b"after", partition=0)
        await producer.send_and_wait(strict_topic, b"and on", partition=0)
    finally:
        await producer.stop()

    assert producer.replacements == 1
    assert await values_on(kafka_bootstrap, strict_topic) == [b"before", b"after", b"and on"]


async def test_a_stopped_producer_refuses_to_send_rather_than_starting_a_new_one(kafka_bootstrap, strict_topic):
    producer = new_producer(kafka_bootstrap, "tests-stopped")
    await producer.start()
    await producer.stop()
    with pytest.raises(RuntimeError):
        await producer.send(strict_topic, b"late", partition=0)
