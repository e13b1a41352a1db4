"""Publishing flk events: a thin wrapper over an idempotent aiokafka producer."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Callable

from flk.events.connection import PLAINTEXT, KafkaConnection
from flk.events.envelope import OutgoingRecord

log = logging.getLogger(__name__)


def _aiokafka_producer(bootstrap: str, client_id: str, connection: KafkaConnection = PLAINTEXT):
    """An aiokafka producer with acks=all and idempotence (no duplicates from retries)."""
    from aiokafka import AIOKafkaProducer

    from flk.events.partitioner import default_partitioner

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=RECORD_BATCH_BYTES,
        partitioner=default_partitioner,  # aiokafka's partitions, ~2x cheaper hash
        **connection.client_options(),
    )


#: The transactional producer's retry backoff. A transaction that starts right after the previous one
#: committed is told CONCURRENT_TRANSACTIONS until the broker has written the last one's markers (a few
#: ms, KAFKA-5477); aiokafka waits a full retry backoff (100 ms by default) before it asks again for
#: AddOffsetsToTxn and EndTxn (only AddPartitionsToTxn has a 20 ms override). With a transaction per
#: partition and batch that wait was most of the continuity worker's latency: measured at 1 000 events/s,
#: publish -> state committed p50 167 / p99 682 ms with 100 ms, 49 / 77 ms with 20 ms (the Java client's
#: figure for the same case).
RETRY_BACKOFF_MS = 20
#: Every producer's record batches (aiokafka's ``max_batch_size``; ``send_in_batches`` and ``send``): below
#: the brokers' default ``message.max.bytes`` (1 MiB), so a full batch is accepted by any topic with default
#: settings (a topic set below it refuses full batches: docs/operations.md). aiokafka's default, 16 KiB, is
#: ~25 of our events with their CloudEvents headers: publishing the region replay's events in such batches
#: cost the publisher 1.24–1.43 and the broker 0.77–0.81 CPU-s per 100 000 events, in 512 KiB batches
#: 0.39–0.63 and 0.25–0.33 (``python -m bench.mainjob.compression_bench --codecs none --batch-bytes 16384
#: 524288``; docs/benchmarks.md, "Fifteenth round").
RECORD_BATCH_BYTES = 512 * 1024


def transactional_producer(bootstrap: str, client_id: str, transactional_id: str,
                           connection: KafkaConnection = PLAINTEXT, transaction_timeout_ms: int = 60_000):
    """A transactional aiokafka producer (acks=all, idempotent). Not wrapped in a RecoveringProducer: a
    failed transaction is aborted or the producer fenced, and its user replaces it (and re-reads what it
    had committed) itself. ``start`` it, then ``await init_transactions(producer)``."""
    from aiokafka import AIOKafkaProducer

    from flk.events.partitioner import default_partitioner

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        transaction_timeout_ms=transaction_timeout_ms,
        linger_ms=5,
        retry_backoff_ms=RETRY_BACKOFF_MS,
        max_batch_size=RECORD_BATCH_BYTES,
        partitioner=default_partitioner,
        **connection.client_options(),
    )


async def init_transactions(producer) -> None:
    """Wait until a started transactional producer holds its producer id and epoch: from then on, every
    earlier producer with the same transactional id is fenced and its open transaction aborted.
    (aiokafka does this lazily, before the first transaction; it has no public call for it.)"""
    await asyncio.shield(producer._txn_manager.wait_for_pid())


def new_producer(bootstrap: str, client_id: str, connection: KafkaConnection = PLAINTEXT) -> "RecoveringProducer":
    """An idempotent producer (acks=all) that replaces itself after a failed send."""
    return RecoveringProducer(lambda: _aiokafka_producer(bootstrap, client_id, connection), client_id)


class RecoveringProducer:
    """An idempotent aiokafka producer that is replaced by a new one after a send failed.

    An idempotent aiokafka producer retries retriable errors for ever, so a send that still fails is
    fatal for it: after a broker restart the broker may answer OutOfOrderSequenceNumber (or the
    producer is fenced, or its sender task died), and aiokafka does not bump the producer epoch as the
    Java client does (aio-libs/aiokafka#1017), so every later send to that partition fails as well.
    The failed send's error still reaches the caller, who retries (nothing was acknowledged: the
    outbox keeps its rows unpublished, a consumer rewinds its batch, the continuity worker replays
    it); the next send goes through a new producer (a new producer id), started after a capped
    backoff. A re-sent record may then be on the topic twice under the same event id (at least once;
    consumers' inboxes drop it). Same calls as AIOKafkaProducer: start, stop, send, send_and_wait.
    """

    def __init__(self, factory: Callable[[], Any], name: str = "producer", *, backoff_initial_s: float = 0.2,
                 backoff_max_s: float = 5.0, stop_timeout_s: float = 10.0) -> None:
        self._factory = factory
        self.name = name
        self._producer: Any = None
        self._broken = False
        self._failures = 0  # replacements in a row without a delivery in between (backoff)
        self._lock = asyncio.Lock()
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stop_timeout_s = stop_timeout_s
        self.replacements = 0  # read by tests and metrics
        self._started = False  # between start() and stop()

    async def start(self) -> None:
        producer = self._factory()
        try:
            await producer.start()
        except BaseException:  # e.g. the cluster refused the credentials: release what it opened
            await producer.stop()
            raise
        self._producer, self._broken, self._started = producer, False, True

    async def stop(self) -> None:
        self._started = False
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                   timestamp_ms: int | None = None, headers: Any = None) -> "asyncio.Future":
        producer = await self._usable()
        future = await producer.send(topic, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms,
                                     headers=headers)
        future.add_done_callback(lambda f: self._delivered(producer, f))
        return future

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
                            timestamp_ms: int | None = None, headers: Any = None) -> Any:
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        return await future

    async def partitions_for(self, topic: str) -> set[int]:
        return await (await self._usable()).partitions_for(topic)

    def create_batch(self) -> Any:
        """An empty record batch (the settings of every producer this one makes are the same)."""
        if self._producer is None:
            raise RuntimeError(f"{self.name}: no producer (not started, stopped, or its replacement failed)")
        return self._producer.create_batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> "asyncio.Future":
        producer = await self._usable()
        future = await producer.send_batch(batch, topic, partition=partition)
        future.add_done_callback(lambda f: self._delivered(producer, f))
        return future

    # ------------------------------------------------------------------ recovery

    def _delivered(self, producer: Any, future: "asyncio.Future") -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self._failures = 0
        elif producer is self._producer and not self._broken:
            self._broken = True
            log.warning("%s: a send failed (%s); the next send goes through a new producer",
                        self.name, type(exc).__name__)

    def _dead(self, producer: Any) -> bool:
        sender = getattr(producer, "_sender", None)  # aiokafka has no public health check
        task = getattr(sender, "sender_task", None)
        return task is not None and task.done()

    async def _usable(self) -> Any:
        producer = self._producer
        if producer is not None and not self._broken and not self._dead(producer):
            return producer
        if not self._started:
            raise RuntimeError(f"{self.name}: producer not started (or stopped)")
        async with self._lock:
            if self._producer is not None and self._producer is not producer:
                return self._producer  # another send replaced it meanwhile
            await self._replace()
            return self._producer

    async def _replace(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            try:  # its unacknowledged sends fail now; their callers retry them
                await asyncio.wait_for(old.stop(), self.stop_timeout_s)
            except Exception as exc:  # noqa: BLE001 - a broken producer may not stop cleanly
                log.info("%s: the failed producer did not stop cleanly (%s)", self.name, type(exc).__name__)
        delay = min(self.backoff_initial_s * 2 ** self._failures, self.backoff_max_s)
        self._failures += 1
        await asyncio.sleep(delay)
        producer = self._factory()
        try:
            await producer.start()
        except BaseException:
            try:
                await asyncio.wait_for(producer.stop(), self.stop_timeout_s)
            except Exception:  # noqa: BLE001
                pass
            raise  # the broker is still away: this send fails, the next one tries again
        self._producer, self._broken = producer, False
        self.replacements += 1
        log.warning("%s: replaced by a new producer (replacement %d)", self.name, self.replacements)


async def publish(producer, record: OutgoingRecord, topic_prefix: str = "") -> None:
    await producer.send_and_wait(topic_prefix + record.topic, value=record.value, key=record.key,
                                 headers=record.headers)


async def publish_many(producer, records: list[OutgoingRecord], topic_prefix: str = "") -> None:
    """Send a batch, then wait for every acknowledgement (order per partition is kept).

    Each record goes to the partition ``send`` would choose for its key (Kafka's default partitioner),
    grouped per partition into record batches (``send_in_batches``): no per-record future or accumulator
    step, which cost the simulator and the outbox relays as much as making the records."""
    from flk.events.partitioner import default_partitioner

    partitions: dict[str, list[int]] = {}
    groups: dict[tuple[str, int], list[tuple[bytes, bytes, list]]] = {}
    for r in records:
        topic = topic_prefix + r.topic
        known = partitions.get(topic)
        if known is None:
            known = partitions[topic] = sorted(await producer.partitions_for(topic))
        partition = default_partitioner(r.key, known, known)
        group = groups.get((topic, partition))
        if group is None:
            group = groups[(topic, partition)] = []
        group.append((r.key, r.value, r.headers))
    futures = []
    for (topic, partition), group in groups.items():
        futures += [future for future, _ in await send_in_batches(producer, topic, partition, group)]
    for future in futures:
        await future


async def send_in_batches(producer, topic: str, partition: int,
                          records: Iterable[tuple[bytes | None, bytes | None, Any]]) -> list[tuple[Any, int]]:
    """Send ``(key, value, headers)`` records to one topic partition as few record batches as fit
    (aiokafka's ``create_batch``/``send_batch``), in order: no per-record future, partitioner or
    accumulator step, which ``send`` costs per record (a quarter of the continuity worker's time when it
    sent each changelog record and event alone). Inside a transaction, like ``send``. Returns each batch's
    delivery future with its record count: the future's ``offset`` is the batch's first record's, so the
    offset after the last record is ``offset + count``."""
    sent: list[tuple[Any, int]] = []
    batch = producer.create_batch()
    count = 0
    for key, value, headers in records:
        if type(headers) is not list:  # (the C record builder takes a list only)
            headers = list(headers or ())
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if not count:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit in a batch")
            batch.close()
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit in a batch")
        count += 1
    if count:
        batch.close()
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent
