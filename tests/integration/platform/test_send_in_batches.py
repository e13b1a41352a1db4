"""`send_in_batches` on the real broker, inside a transaction: records that overflow one record batch go
in several, in order, and the offsets it reports are where the records landed (the continuity worker
takes its changelog position from them)."""
from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from flk.events.producer import RECORD_BATCH_BYTES, init_transactions, send_in_batches, transactional_producer

pytestmark = pytest.mark.integration


@pytest.fixture
async def two_partitions(kafka_bootstrap):
    name = f"t{uuid.uuid4().hex[:10]}.send-in-batches"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def committed_records(bootstrap: str, topic: str, partition: int) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        records = []
        while await consumer.position(tp) < end:
            for part in (await consumer.getmany(timeout_ms=500)).values():
                records += part
        return records
    finally:
        await consumer.stop()


async def test_records_beyond_one_batch_land_in_order_on_the_given_partition_at_the_reported_offsets(
        kafka_bootstrap, two_partitions):
    producer = transactional_producer(kafka_bootstrap, "tests-batches", f"tests-batches-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        await init_transactions(producer)
        value = b"v" * 1000
        records = [(f"k{i}".encode(), value + str(i).encode(), [("h", str(i).encode())] if i % 2 else ())
                   for i in range(3 * RECORD_BATCH_BYTES // 1000)]
        records.append((b"deleted", None, None))  # a tombstone
        await producer.begin_transaction()
        sent = await send_in_batches(producer, two_partitions, 1, records)
        await producer.commit_transaction()
        ends = [(await future).offset + count for future, count in sent]
    finally:
        await producer.stop()

    assert len(sent) >= 3, "the records did not overflow one record batch"
    assert sum(count for _, count in sent) == len(records)
    landed = await committed_records(kafka_bootstrap, two_partitions, 1)
    assert [(r.key, r.value) for r in landed] == [(k, v) for k, v, _ in records]
    assert [list(r.headers) for r in landed[:2]] == [[], [("h", b"1")]]
    offsets = [r.offset for r in landed]
    assert offsets == sorted(offsets)
    assert ends[-1] == offsets[-1] + 1, "the offset after the last record is not what the futures say"
    assert all(end - 1 in offsets for end in ends), "a batch's reported end is not a record's offset + 1"
    assert await committed_records(kafka_bootstrap, two_partitions, 0) == []


async def test_the_shared_producer_sends_a_quarter_mebibyte_of_events_as_one_record_batch(kafka_bootstrap,
                                                                                         two_partitions):
    """The idempotent producer every service and the simulator publish through fills record batches up to
    RECORD_BATCH_BYTES, not aiokafka's 16 KiB (which split these records into 16 batches and cost the publisher
    and the broker three times the CPU: docs/benchmarks.md)."""
    from flk.events.producer import _aiokafka_producer

    records = [(f"k{i}".encode(), b"v" * 600, [("ce_id", str(i).encode())]) for i in range(400)]
    producer = _aiokafka_producer(kafka_bootstrap, "tests-batches")
    await producer.start()
    try:
        sent = await send_in_batches(producer, two_partitions, 0, records)
        for future, _ in sent:
            await future
    finally:
        await producer.stop()

    assert [count for _, count in sent] == [len(records)]
    landed = await committed_records(kafka_bootstrap, two_partitions, 0)
    assert [(r.key, r.value) for r in landed] == [(k, v) for k, v, _ in records]


async def test_no_records_send_no_batch(kafka_bootstrap, two_partitions):
    producer = transactional_producer(kafka_bootstrap, "tests-batches", f"tests-batches-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        await init_transactions(producer)
        await producer.begin_transaction()
        assert await send_in_batches(producer, two_partitions, 0, []) == []
        await producer.commit_transaction()
    finally:
        await producer.stop()


async def test_publish_many_puts_each_record_where_send_would_in_order_per_key(kafka_bootstrap, topic_prefix,
                                                                                producer):
    """publish_many sends record batches per partition: every record lands on the partition aiokafka's own
    default partitioner chooses for its key (where ``send`` put it), once, and one key's records in order."""
    from aiokafka.partitioner import DefaultPartitioner

    from flk.events.envelope import make_record
    from flk.events.producer import publish_many
    from flk.events.registry import registry
    from tests.support.builders import a_patient_key, a_visit

    keys = [a_patient_key(i) for i in range(40)]
    records = [make_record("visit.recorded.v1", a_visit(patient_key=keys[i % len(keys)], visit_id=f"v{i}"),
                           source="/t") for i in range(600)]
    await publish_many(producer, records[:1], topic_prefix)
    await publish_many(producer, records[1:], topic_prefix)

    topic = topic_prefix + registry().topic_for("visit.recorded.v1").name
    partitions = sorted(await producer.partitions_for(topic))
    assert len(partitions) > 1
    landed = {p: await committed_records(kafka_bootstrap, topic, p) for p in partitions}
    aiokafkas = DefaultPartitioner()
    assert all(aiokafkas(r.key, partitions, partitions) == p for p, rs in landed.items() for r in rs)
    by_key: dict[bytes, list[str]] = {}
    for rs in landed.values():
        for r in rs:
            by_key.setdefault(r.key, []).append(dict(r.headers)["ce_id"].decode())
    assert by_key == {key.encode(): [r.event_id for r in records if r.key == key.encode()] for key in keys}
