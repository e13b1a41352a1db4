"""Running an EventConsumer inside a test until a condition holds."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from flk.events.connection import PLAINTEXT, KafkaConnection
from flk.events.consumer import ConsumerSettings, EventConsumer
from flk.events.envelope import Envelope


async def run_consumer_until(
    bootstrap: str, prefix: str, topics: tuple[str, ...], producer: object,
    done: Callable[[list[Envelope]], bool], timeout_s: float = 30.0, connection: KafkaConnection = PLAINTEXT,
) -> list[Envelope]:
    received: list[Envelope] = []

    async def collect(envelope: Envelope) -> None:
        received.append(envelope)

    consumer = EventConsumer(
        ConsumerSettings(bootstrap=bootstrap, group_id=f"{prefix}test", topics=topics, name="test-consumer",
                         topic_prefix=prefix, connection=connection),
        handle=collect, dlq_producer=producer,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done(received) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return received


@dataclass
class ConsumedRecord:
    """A record as a consumer hands it over (topic, partition, offset, key, value, headers), for feeding a
    batch processor without a broker."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple  #: as aiokafka's consumer records carry them (a producer's records: a list)
