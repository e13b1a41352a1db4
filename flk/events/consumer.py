"""The consuming side every aiokafka-based service shares: decode, validate, handle, commit.

At-least-once: offsets are committed only after every message of a batch was handled or
dead-lettered, so handlers must be idempotent (they dedupe on the event id in an inbox).

Failures:
- the message is not a valid flk event (envelope or schema) → DLQ at once, consumer goes on;
- the handler raises :class:`PermanentFailure` → DLQ with its reason;
- the handler raises :class:`TransientFailure` (database or broker unavailable) → retried with
  capped exponential backoff (tenacity) until it succeeds; the partition waits, nothing is skipped;
- any other exception (a bug) → retried ``max_attempts`` times, then DLQ with the error type.

A fast stream is gathered (``gather_fast_stream``): while a consumer receives at least
``linger_from_per_second`` records a second — a replay, not a live stream — a poll that is not full waits
``linger_ms`` for what follows, so the batch handler's transactions and the offset commits come per several
hundred records, not per few dozen. A slower stream's polls are handled as they come.

Batch mode (optional ``batch_handler``): each record is still validated on its own (invalid ones
to the DLQ with the reason), then the valid envelopes of a poll, in arrival order and in chunks of
at most ``batch_size``, are handed to the batch handler together (e.g. one transaction per chunk).
TransientFailure → the whole chunk is retried with backoff; any other exception → that chunk is
handled again one message at a time through ``handle`` (so one poison message is retried and
dead-lettered alone, and the others still get handled). A batch handler may also return the
envelopes it left unhandled (e.g. a failing one and those that must follow it): they are handled
one at a time through ``handle``, in arrival order, before the next chunk.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_if_exception_type, wait_exponential

from flk.events.connection import PLAINTEXT, KafkaConnection
from flk.events.contracts import ContractViolation
from flk.events.dlq import FailedMessage, send_to_dlq
from flk.events.envelope import Envelope, EnvelopeError, read_record

log = logging.getLogger(__name__)

Handler = Callable[[Envelope], Awaitable[None]]
#: handles the valid envelopes of a chunk together (arrival order); idempotent like Handler.
#: Returns None, or the envelopes it left to ``handle`` (one at a time, arrival order)
BatchHandler = Callable[[list[Envelope]], Awaitable["list[Envelope] | None"]]


class PermanentFailure(Exception):
    """This message can never be handled; dead-letter it with this reason."""


class TransientFailure(Exception):
    """A dependency is unavailable; retry the same message later."""


class ConsumerProbe(Protocol):
    def handled(self, consumer: str, event_type: str) -> None: ...
    def dead_lettered(self, consumer: str, topic: str, category: str) -> None: ...
    def retried(self, consumer: str, category: str) -> None: ...
    def group_lag(self, consumer: str, records: int) -> None: ...  # flk.events.lag.report_group_lag


class NullProbe:
    def handled(self, consumer: str, event_type: str) -> None: ...
    def dead_lettered(self, consumer: str, topic: str, category: str) -> None: ...
    def retried(self, consumer: str, category: str) -> None: ...
    def group_lag(self, consumer: str, records: int) -> None: ...


@dataclass
class ConsumerSettings:
    bootstrap: str
    group_id: str
    topics: tuple[str, ...]
    name: str
    topic_prefix: str = ""  # physical topic = prefix + registry name (test isolation)
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    max_records: int = 500
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 2_000
    connection: KafkaConnection = PLAINTEXT  # TLS / SASL (flk/events/connection.py)
    group_instance_id: str | None = None  # static membership (PlatformSettings.replica_name); None: dynamic
    #: batch mode: while the consumer receives at least ``linger_from_per_second`` records a second, a poll
    #: that is not full (``max_records``) waits this long for more (0: never)
    linger_ms: int = 100
    linger_from_per_second: int = 2_000


class StreamPace:
    """How many records a consumer received in the last second, poll by poll."""

    def __init__(self, window_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._polls: deque[tuple[float, int]] = deque()
        self._total = 0

    def received(self, count: int) -> int:
        """Note a poll's records; the records of the last ``window_s`` seconds, these included."""
        now = self.clock()
        polls = self._polls
        polls.append((now, count))
        self._total += count
        while polls[0][0] <= now - self.window_s:
            self._total -= polls.popleft()[1]
        return self._total


async def gather_fast_stream(consumer, batches: dict, pace: StreamPace, *, linger_ms: int, from_per_second: int,
                             max_records: int, below_records: int | None = None) -> dict:
    """``batches`` (an aiokafka ``getmany``'s) with what the consumer fetches within ``linger_ms`` after them,
    up to ``max_records`` in all, when they are fewer than ``below_records`` (default: ``max_records``) while
    the stream brings at least ``from_per_second`` records a second (``pace``): a fast stream is handled in
    fuller batches. Each partition's records stay in offset order. Batches come back as they are, without
    waiting, from a slower stream (a live event's latency is not affected) and from a backlog (a poll of
    ``below_records`` or more: what follows is already being fetched)."""
    count = sum(len(records) for records in batches.values())
    recent = pace.received(count)
    below = max_records if below_records is None else min(below_records, max_records)
    if linger_ms <= 0 or not count or recent < from_per_second or count >= below:
        return batches
    await asyncio.sleep(linger_ms / 1000)
    more = await consumer.getmany(timeout_ms=0, max_records=max_records - count)
    for tp, records in more.items():
        batches[tp] = batches[tp] + records if tp in batches else records
        pace.received(len(records))
    return batches


@contextlib.asynccontextmanager
async def _rewound_on_failure(consumer, batches) -> AsyncIterator[None]:
    """A batch that fails (a dead letter or the commit could not reach the broker) is read again:
    the consumer seeks back to its first offsets before the error ends ``run`` (the caller's
    supervisor starts it again), so no message of it is skipped; handlers are idempotent."""
    try:
        yield
    except Exception:
        from aiokafka.errors import IllegalStateError

        for tp, records in batches.items():
            if records:
                try:
                    consumer.seek(tp, records[0].offset)
                except (IllegalStateError, AssertionError):  # no longer ours: its new owner reads it
                    pass
        raise


@dataclass
class EventConsumer:
    settings: ConsumerSettings
    handle: Handler
    dlq_producer: object  # aiokafka.AIOKafkaProducer (or anything with send_and_wait)
    probe: ConsumerProbe = field(default_factory=NullProbe)
    _consumer: object = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    batch_handler: BatchHandler | None = None  # optional: see "Batch mode" above
    batch_size: int = 500
    _pace: StreamPace = field(default_factory=StreamPace)

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        s = self.settings
        self._consumer = AIOKafkaConsumer(
            *(s.topic_prefix + t for t in s.topics),
            bootstrap_servers=s.bootstrap,
            group_id=s.group_id,
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_records=s.max_records,
            group_instance_id=s.group_instance_id,
            **s.connection.client_options(),
        )
        await self._consumer.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def run(self) -> None:
        """Consume until stop() is called."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=self.settings.max_records)
            if not batches:
                continue
            if self.batch_handler is not None:
                s = self.settings
                batches = await gather_fast_stream(consumer, batches, self._pace, linger_ms=s.linger_ms,
                                                   from_per_second=s.linger_from_per_second,
                                                   max_records=s.max_records)
            messages = [FailedMessage(
                topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                headers=tuple(r.headers or ()),
            ) for records in batches.values() for r in records]
            async with _rewound_on_failure(consumer, batches):
                if self.batch_handler is not None:
                    await self.process_batch(messages)
                else:
                    for message in messages:
                        await self.process(message)
                await consumer.commit()

    async def process_batch(self, messages: list[FailedMessage]) -> None:
        """Batch mode: every message handled (together, or alone after a failure) or dead-lettered."""
        assert self.batch_handler is not None
        valid = [(m, e) for m in messages if (e := await self._read(m)) is not None]
        for start in range(0, len(valid), max(1, self.batch_size)):
            await self._handle_chunk(valid[start:start + max(1, self.batch_size)])

    def _backoff(self) -> wait_exponential:
        """Capped exponential backoff between retries: initial, 2×, 4×, … up to the maximum."""
        return wait_exponential(multiplier=self.settings.backoff_initial_s, max=self.settings.backoff_max_s)

    def _before_retry(self, what: str) -> Callable[[RetryCallState], None]:
        """Counted and logged before each wait; a consumer that is stopping gives the work back instead
        (uncommitted, it is redelivered to whoever holds the partition next)."""
        name = self.settings.name

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            delay = state.upcoming_sleep
            if isinstance(exc, TransientFailure):
                self.probe.retried(name, "transient")
                log.warning("%s: dependency unavailable (%s); retrying %s in %.1fs", name, exc, what, delay)
            else:
                self.probe.retried(name, "error")
                log.warning("%s: handler error %s (attempt %d)", name, type(exc).__name__, state.attempt_number)
            if self._stopping.is_set():
                raise asyncio.CancelledError(f"stopping with an unhandled {what}; it will be redelivered")

        return before_sleep

    async def _handle_chunk(self, chunk: list[tuple[FailedMessage, Envelope]]) -> None:
        if not chunk:
            return
        name = self.settings.name
        retrying = AsyncRetrying(retry=retry_if_exception_type(TransientFailure), wait=self._backoff(),
                                 before_sleep=self._before_retry("the batch"), reraise=True)
        try:
            async for attempt in retrying:  # a TransientFailure: the whole chunk again, until it goes through
                with attempt:
                    left = await self.batch_handler([e for _, e in chunk])
        except Exception as exc:  # noqa: BLE001 - one message is bad: find it by handling one by one
            log.warning("%s: batch of %d failed (%s); handling its messages one by one", name, len(chunk),
                        type(exc).__name__)
            for message, envelope in chunk:
                await self._handle_valid(message, envelope)
            return
        left_ids = {id(e) for e in left or ()}
        for message, envelope in chunk:
            if id(envelope) in left_ids:
                await self._handle_valid(message, envelope)
            else:
                self.probe.handled(name, envelope.event_type)

    async def process(self, message: FailedMessage) -> None:
        """Handle one message to the end: handled, or dead-lettered. Never skipped."""
        envelope = await self._read(message)
        if envelope is not None:
            await self._handle_valid(message, envelope)

    async def _read(self, message: FailedMessage) -> Envelope | None:
        """The message's envelope, or None after dead-lettering an invalid one with the reason."""
        name = self.settings.name
        logical_topic = message.topic.removeprefix(self.settings.topic_prefix)
        try:
            return read_record(logical_topic, message.key, message.value, message.headers)
        except (EnvelopeError, ContractViolation) as exc:
            category = "envelope" if isinstance(exc, EnvelopeError) else "contract"
            await send_to_dlq(self.dlq_producer, message, str(exc), name)
            self.probe.dead_lettered(name, logical_topic, category)
            log.warning("dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
            return None

    async def _handle_valid(self, message: FailedMessage, envelope: Envelope) -> None:
        name = self.settings.name
        logical_topic = message.topic.removeprefix(self.settings.topic_prefix)
        max_attempts = self.settings.max_attempts

        def give_up(state: RetryCallState) -> bool:
            # a dependency that is away is waited for; a bug is tried max_attempts times in all
            exc = state.outcome.exception() if state.outcome is not None else None
            return not isinstance(exc, TransientFailure) and state.attempt_number >= max_attempts

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and not isinstance(exc, PermanentFailure)),
            stop=give_up, wait=self._backoff(), before_sleep=self._before_retry("the message"), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    await self.handle(envelope)
        except PermanentFailure as exc:
            await send_to_dlq(self.dlq_producer, message, f"rejected by handler: {exc}", name)
            self.probe.dead_lettered(name, logical_topic, "handler")
            return
        except Exception as exc:  # noqa: BLE001 - a bug, max_attempts times: dead-letter it with the error type
            self.probe.retried(name, "error")
            attempts = retrying.statistics.get("attempt_number", max_attempts)
            reason = f"handler failed {attempts} times: {type(exc).__name__}"
            await send_to_dlq(self.dlq_producer, message, reason, name)
            self.probe.dead_lettered(name, logical_topic, "error")
            log.exception("%s: dead-lettered %s@%d after %d attempts", name, message.topic, message.offset, attempts)
            return
        self.probe.handled(name, envelope.event_type)


@dataclass
class KeyedEventConsumer(EventConsumer):
    """EventConsumer whose batches are handled concurrently across keys: up to ``concurrency``
    keys at once, each key's messages one after another in arrival order (whatever topic they
    came from, so two facts about one patient never race). Offsets are committed after the whole
    batch, as in EventConsumer: delivery stays at least once."""

    concurrency: int = 16

    async def run(self) -> None:
        if self.batch_handler is not None:
            return await super().run()  # a batch handler orders per key itself (e.g. by patient)
        consumer = self._consumer
        assert consumer is not None, "start() first"
        gate = asyncio.Semaphore(self.concurrency)

        async def chain(messages: list[FailedMessage]) -> None:
            async with gate:
                for message in messages:
                    await self.process(message)

        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=self.settings.max_records)
            if not batches:
                continue
            chains: dict[bytes | None, list[FailedMessage]] = {}
            for records in batches.values():
                for r in records:
                    chains.setdefault(r.key, []).append(FailedMessage(
                        topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                        headers=tuple(r.headers or ()),
                    ))
            async with _rewound_on_failure(consumer, batches):
                await asyncio.gather(*(chain(c) for c in chains.values()))
                await consumer.commit()
