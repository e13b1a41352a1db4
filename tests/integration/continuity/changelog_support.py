"""Helpers for the changelog tests: read a topic to its end, drop a topic's records as retention does."""
from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from flk.events.envelope import read_record
from flk.events.registry import registry

INDICES_TOPIC = registry().topic_for("continuity.indices_changed.v1").name
VISITS_TOPIC = registry().topic_for("visit.recorded.v1").name
CHANGELOG_TOPIC = registry().changelog("continuity", "patients").name
PARTITIONS = registry().patient_partitions


async def stable_ends(bootstrap: str, tps: list, timeout_s: float = 60.0) -> dict:
    """The end offsets once no transaction is open on ``tps`` any more (the last stable offset reached
    the high watermark: a committed transaction's markers are written shortly after its commit returns)."""
    committed = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed")
    uncommitted = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await committed.start()
    await uncommitted.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            lso, hw = await committed.end_offsets(tps), await uncommitted.end_offsets(tps)
            if lso == hw:
                return lso
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"transactions still open after {timeout_s}s: {lso} < {hw}")
            await asyncio.sleep(0.1)
    finally:
        await committed.stop()
        await uncommitted.stop()


async def read_to_end(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> list:
    """Every committed record of ``topic`` (read_committed), partition by partition in offset order."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    ends = await stable_ends(bootstrap, tps)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    records: list = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            for part in (await consumer.getmany(*behind, timeout_ms=500)).values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def indices_events(bootstrap: str, prefix: str) -> dict[str, list[dict]]:
    """Every committed ``indices_changed`` event per patient, in topic order."""
    events: dict[str, list[dict]] = {}
    for r in await read_to_end(bootstrap, prefix + INDICES_TOPIC):
        events.setdefault(r.key.decode(), []).append(read_record(INDICES_TOPIC, r.key, r.value, r.headers).data)
    return events


async def changelog_table(bootstrap: str, prefix: str) -> dict[bytes, bytes | None]:
    """The changelog as a consumer that keeps the last record per key sees it (None: a tombstone)."""
    table: dict[bytes, bytes | None] = {}
    for r in await read_to_end(bootstrap, prefix + CHANGELOG_TOPIC):
        table[r.key] = r.value
    return table


async def delete_all_records(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    """Delete every record of ``topic`` (what the broker's retention does to records older than it); the
    new log start offset per partition."""
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(end) for tp, end in ends.items() if end})
    finally:
        await admin.close()
    return {tp.partition: end for tp, end in ends.items()}


async def log_start_offsets(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.beginning_offsets(tps)).items()}
    finally:
        await consumer.stop()


def served(data: dict) -> tuple:
    """What an indices event says (as of, unit, doctor and total indices)."""
    return data["as_of"], data["care_unit_id"], data["doctor"], data["total"]


def served_by(processor, patient: str) -> tuple | None:
    """What a worker serves for a patient, in an event's shape (None: it holds no record)."""
    found = processor.patient(patient)
    if found is None:
        return None
    record, indices = found
    return (indices.as_of.isoformat(), record.state.listing_unit_id, indices.doctor._asdict(),
            indices.total._asdict())
