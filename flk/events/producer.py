"""Publishing flk events: a thin wrapper over an idempotent aiokafka producer."""
from __future__ import annotations

from flk.events.envelope import OutgoingRecord


def new_producer(bootstrap: str, client_id: str):
    """An aiokafka producer with acks=all and idempotence (no duplicates from retries)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


async def publish(producer, record: OutgoingRecord, topic_prefix: str = "") -> None:
    await producer.send_and_wait(topic_prefix + record.topic, value=record.value, key=record.key,
                                 headers=record.headers)


async def publish_many(producer, records: list[OutgoingRecord], topic_prefix: str = "") -> None:
    """Send a batch, then wait for every acknowledgement (order per partition is kept)."""
    futures = [
        await producer.send(topic_prefix + r.topic, value=r.value, key=r.key, headers=r.headers)
        for r in records
    ]
    for future in futures:
        await future
