"""The patient tables' changelog topic: what a batch commits to it, and restoring a table from it.

The changelog (registry: ``changelog_of: patients``, compacted) mirrors each per-partition table key
for key and byte for byte: a patient's record is the state codec's bytes that the table stores
(``record.encode_record``), a deleted patient is a tombstone (value ``None``), and the table's input
offsets are records under ``store.OFFSET_PREFIX + topic`` whose value is the offset in decimal (as
RocksDB holds it). Changelog partition p is input partition p's table.

Every batch of a partition is one Kafka transaction of that partition's transactional producer
(transactional id ``<prefix><group id>-<p>``, the same on every replica: a new owner's producer
fences the previous owner's, as Kafka Streams' EOS-v1 task producers do): the changed records and
the next input offsets to the changelog, the ``indices_changed`` events and dead letters, and the
group offsets (``send_offsets_to_transaction``). The local table is committed after the transaction,
with its changelog position (docs/adr/0008).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from services.continuity.adapters.store import CHANGELOG_POSITION, OFFSET_PREFIX, PatientStore

log = logging.getLogger("flk.continuity.changelog")


def offset_record(topic: str, offset: int) -> tuple[bytes, bytes]:
    """The changelog record (key, value) of a table's input offset (as the RocksDB table stores it)."""
    return OFFSET_PREFIX + topic.encode(), str(offset).encode()


def table_writes(records: Iterable[Any]) -> tuple[dict[bytes, bytes | None], dict[str, int]]:
    """Pure: changelog records -> (the table's writes, its offsets); the later record of a key wins."""
    writes: dict[bytes, bytes | None] = {}
    offsets: dict[str, int] = {}
    prefix_len = len(OFFSET_PREFIX)
    for r in records:
        key = r.key
        if key.startswith(OFFSET_PREFIX):
            offsets[key[prefix_len:].decode()] = int(r.value)
        else:
            writes[key] = r.value
    return writes, offsets


async def restore(consumer, store: PatientStore, topic: str, partitions: Iterable[int],
                  max_records: int = 20_000) -> dict[int, int]:
    """Bring the open tables of ``partitions`` up to the end of their changelog partitions: read each
    from the table's ``CHANGELOG_POSITION`` (0 for an empty table) to the end (read_committed: the last
    stable offset) and commit what was read in chunks. Returns the records read per partition.

    ``consumer``: a started AIOKafkaConsumer without a group, ``isolation_level="read_committed"``.
    The caller has fenced the partitions' previous writers first (their transactional producers), so
    nothing is committed to these changelog partitions while they are read."""
    from aiokafka import TopicPartition

    tps = {TopicPartition(topic, p): p for p in partitions}
    if not tps:
        return {}
    consumer.assign(list(tps))
    for tp, p in tps.items():
        consumer.seek(tp, store.offsets(p).get(CHANGELOG_POSITION, 0))
    ends = await consumer.end_offsets(list(tps))
    read = dict.fromkeys(tps.values(), 0)
    pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
    try:
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=max_records)
            for tp in list(pending):
                records = batches.get(tp, ())
                position = await consumer.position(tp)
                writes, offsets = table_writes(records)
                offsets[CHANGELOG_POSITION] = position
                store.commit(tps[tp], writes, offsets)
                read[tps[tp]] += len(records)
                if position >= ends[tp]:
                    pending.discard(tp)
            await asyncio.sleep(0)
    finally:
        consumer.unsubscribe()
    return read


def transactional_id(prefix: str, group_id: str, partition: int) -> str:
    """The same on every replica, so the partition's next owner fences the previous one."""
    return f"{transactional_id_prefix(prefix, group_id)}{partition}"


def transactional_id_prefix(prefix: str, group_id: str) -> str:
    """What every partition's transactional id starts with (the workers' ACL on transactional ids)."""
    return f"{prefix}{group_id}-"
