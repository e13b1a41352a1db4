"""The dead-letter mechanism every consumer shares.

A message that fails validation or handling goes to ``<topic>.dlq`` with its original key,
value and headers, plus headers that say why and where it came from. The consumer then
goes on; nothing is dropped silently.

The reason is written for an operator and never contains field values, so no personal
data is copied into it. The original value is kept as it was (it may carry a pseudonymous
patient key, never a personnummer: see docs/architecture.md, "Privacy and security").
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from flk.events.registry import DLQ_SUFFIX

REASON = "dlq_reason"
SOURCE_TOPIC = "dlq_source_topic"
SOURCE_PARTITION = "dlq_source_partition"
SOURCE_OFFSET = "dlq_source_offset"
CONSUMER = "dlq_consumer"
FAILED_AT = "dlq_failed_at"
DLQ_HEADERS = (REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, CONSUMER, FAILED_AT)

MAX_REASON_BYTES = 1000


@dataclass(frozen=True)
class FailedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class RawProducer(Protocol):
    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                            headers: list[tuple[str, bytes]] | None = None, **kwargs: object) -> object: ...


def dead_letter_for(message: FailedMessage, reason: str, consumer: str,
                    now: datetime | None = None) -> DeadLetter:
    """Pure: the DLQ record for a failed message."""
    failed_at = (now or datetime.now(timezone.utc)).isoformat()
    kept = [(k, v) for k, v in message.headers if k not in DLQ_HEADERS]
    return DeadLetter(
        topic=message.topic + DLQ_SUFFIX,
        key=message.key,
        value=message.value,
        headers=kept + [
            (REASON, reason.encode("utf-8")[:MAX_REASON_BYTES]),
            (SOURCE_TOPIC, message.topic.encode()),
            (SOURCE_PARTITION, str(message.partition).encode()),
            (SOURCE_OFFSET, str(message.offset).encode()),
            (CONSUMER, consumer.encode()),
            (FAILED_AT, failed_at.encode()),
        ],
    )


async def send_to_dlq(producer: RawProducer, message: FailedMessage, reason: str, consumer: str) -> DeadLetter:
    letter = dead_letter_for(message, reason, consumer)
    await producer.send_and_wait(letter.topic, value=letter.value, key=letter.key, headers=letter.headers)
    return letter
