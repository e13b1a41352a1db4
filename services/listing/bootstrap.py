"""The composition root of the listing service: every port is a parameter; `ListingRuntime` runs
the loops (each supervised: an error is logged and the loop goes on after a pause).

* commands — ``listing.commands.v1`` → COMMAND_HANDLERS (inbox key: the contract's ``command_id``,
  shared with the REST API, so a command sent both ways is handled once)
* facts    — roster, population register, SÄBO residence, ACG risk, the region's unit register
             → FACT_HANDLERS (inbox key: the CloudEvents id)
* relay    — the outbox → ``listing.events.v1`` / ``listing.capacity.v1``, woken after every
             decision and every ``relay_interval_s``
* goal KPIs — every ``kpi_snapshot_interval_s`` the finished days' G1/G3 are stored for Grafana
             (adapters/kpi_snapshots.py; today stays live)
* consent expiry — every ``consent_expiry_interval_s`` a minor's listing requests whose wait for the
             other guardian's consent is over (P3, ``p3_consent_wait_days``) are rejected
             ``guardian_consent_expired`` (service_layer/handlers.expire_consents); its runs and
             expiries are counted, the requests closed by outcome counted by ``observe_decisions``,
             and the requests open now are a gauge refreshed with the outbox's
* parked commands — Kafka commands whose person the register does not know yet wait in
             ``listing.parked_command`` and go to the handlers once the person is known, or after
             ``person_wait_s`` (then rejected person_unknown) — adapters/parking.py

Both consumers are the platform's :class:`KeyedEventConsumer` (DLQ with a reason, retries, commit
after the batch). Commands go in chunks of up to ``command_chunk_size``, one transaction per chunk
(service_layer/chunks.py: a person's commands in order, a failing command taken back and handled
alone afterwards); facts likewise in chunks of up to ``fact_chunk_size``, one transaction per chunk
(service_layer/fact_chunks.py: arrival order, so a patient's facts never overtake each other; a
failing fact taken back and handled alone afterwards, with the later facts of its person). A chunk
size of 1 handles one message per transaction, facts a batch's keys concurrently.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flk.events.acls import KafkaUse
from flk.events.consumer import (
    ConsumerSettings,
    EventConsumer,
    KeyedEventConsumer,
    PermanentFailure,
    TransientFailure,
)
from flk.db.errors import transient_database_errors
from flk.events.envelope import Envelope
from flk.events.lag import report_group_lag
from flk.events.outbox import OutboxRelay
from flk.events.registry import registry
from flk.tasks import Wakeup, stop_tasks, supervised_task
from services.listing.adapters.kpi_snapshots import store_finished_days
from services.listing.adapters.metrics import ListingProbe
from services.listing.adapters.parking import ParkedCommand, ParkedCommands
from services.listing.adapters.relay import listing_relay
from services.listing.adapters.repository import open_pending_listings
from services.listing.domain.events import ListingConsentClosed
from services.listing.service_layer.chunks import handle_chunk
from services.listing.service_layer.dispatch import check_values, handle_message
from services.listing.service_layer.fact_chunks import handle_fact_chunk
from services.listing.service_layer.handlers import (
    COMMAND_HANDLERS,
    FACT_HANDLERS,
    Deps,
    Handler,
    InvalidMessage,
    Message,
    expire_consents,
)
from services.listing.settings import ListingSettings

log = logging.getLogger(__name__)


def command_topics() -> tuple[str, ...]:
    """The topics of the commands the listing service handles."""
    return registry().topics_carrying(COMMAND_HANDLERS)


def fact_topics() -> tuple[str, ...]:
    """The topics of the register facts the listing service keeps."""
    return registry().topics_carrying(FACT_HANDLERS)


#: the listing service's two consumers: (group suffix, handlers); a group each
COMMANDS, FACTS = "commands", "facts"
CONSUMERS: tuple[tuple[str, Mapping[str, Handler]], ...] = ((COMMANDS, COMMAND_HANDLERS), (FACTS, FACT_HANDLERS))


def group_id(settings: ListingSettings, suffix: str) -> str:
    """The consumer group of one of the listing service's consumers (without the topic prefix)."""
    return f"{settings.consumer_group}.{suffix}"


def kafka_use(settings: ListingSettings) -> KafkaUse:
    """What the listing service does on Kafka (its ACLs, `flk kafka acls`)."""
    return KafkaUse("listing", consumes=tuple(t for _, handlers in CONSUMERS for t in handlers),
                    groups=tuple(group_id(settings, suffix) for suffix, _ in CONSUMERS))


def chunk_handler(deps: Deps, handlers: Mapping[str, Handler], probe: ListingProbe,
                  message_id: Callable[[Envelope], str], parking: ParkedCommands | None = None,
                  chunk: Callable[..., Awaitable[Any]] = handle_chunk,
                  ) -> Callable[[list[Envelope]], Awaitable[list[Envelope]]]:
    """Adapt a consumed chunk to ``chunk`` (:func:`handle_chunk` for commands, :func:`handle_fact_chunk`
    for facts: one transaction per chunk); what it leaves over goes back to the consumer, which
    handles it one at a time through ``envelope_handler``. With ``parking``, commands waiting for
    their person are parked first (adapters/parking.py)."""
    unavailable = transient_database_errors()

    async def handle(envelopes: list[Envelope]) -> list[Envelope]:
        now = datetime.now(timezone.utc)
        msgs, index = [], []
        unnamed = []
        for envelope in envelopes:
            try:
                msgs.append(Message(message_id(envelope), envelope.event_type, envelope.data, now))
                index.append(envelope)
            except Exception:  # noqa: BLE001 - no id: the one-at-a-time path says why
                unnamed.append(envelope)
        try:
            if parking is not None and msgs:
                waiting = await _park(parking, msgs, index, probe)
                if waiting:
                    kept = [i for i, m in enumerate(msgs) if m.message_id not in waiting]
                    msgs, index = [msgs[i] for i in kept], [index[i] for i in kept]
            result = await chunk(msgs, deps, probe, handlers)
        except unavailable as exc:
            raise TransientFailure(type(exc).__name__) from None
        left = {id(index[i]) for i in result.leftover} | {id(e) for e in unnamed}
        return [e for e in envelopes if id(e) in left]

    return handle


def envelope_handler(deps: Deps, handlers: Mapping[str, Handler], probe: ListingProbe, attempts: int,
                     message_id: Callable[[Envelope], str], parking: ParkedCommands | None = None,
                     ) -> Callable[[Envelope], Awaitable[None]]:
    """Adapt a consumed envelope to the handlers: never handleable → PermanentFailure (DLQ with the
    reason), database unavailable → TransientFailure (the partition waits and retries). With
    ``parking``, a command waiting for its person is parked instead (adapters/parking.py)."""
    unavailable = transient_database_errors()

    async def handle(envelope: Envelope) -> None:
        msg = Message(message_id(envelope), envelope.event_type, envelope.data, datetime.now(timezone.utc))
        try:
            if parking is not None and msg.message_type in handlers \
                    and await _park(parking, [msg], [envelope], probe):
                return
            await handle_message(msg, deps, probe, attempts, handlers)
        except InvalidMessage as exc:
            raise PermanentFailure(str(exc)) from None
        except unavailable as exc:
            raise TransientFailure(type(exc).__name__) from None

    return handle


async def _park(parking: ParkedCommands, msgs: list[Message], envelopes: list[Envelope],
                probe: ListingProbe) -> dict[str, bool]:
    """Park what waits for its person; the command ids parked (now or by an earlier delivery).
    Only commands whose values the register can hold are parked (the rest goes on to its dead
    letter now, not after the wait)."""
    storable = []
    for msg, envelope in zip(msgs, envelopes):
        try:
            check_values(msg.data)
        except InvalidMessage:
            continue
        storable.append((msg, envelope))
    waiting = await parking.park_waiting(storable)
    for msg, _ in storable:
        if waiting.get(msg.message_id):
            probe.parked(msg.message_type)
    return waiting


def observe_decisions(probe: ListingProbe, then: Callable[..., None] | None = None) -> Callable[..., None]:
    """``Deps.on_decided`` that counts the P3 requests closed, by outcome (every path that closes one —
    a command, the API, the expiry sweep, the register's P1 facts — reports its events here after its
    commit), then calls ``then`` (the relay's wake-up)."""
    def on_decided(msg: Message, outcome: object, events: list) -> None:
        for event in events:
            if isinstance(event, ListingConsentClosed):
                probe.consent_closed(event.outcome.value)
        if then is not None:
            then(msg, outcome, events)

    return on_decided


def build_deps(settings: ListingSettings, pool: object, on_decided: Callable[..., None] | None = None,
               clock: Callable[[], datetime] | None = None) -> Deps:
    return Deps(pool=pool, profile_name=settings.profile, timezone=settings.timezone,
                clock=clock or (lambda: datetime.now(timezone.utc)),
                on_decided=on_decided or (lambda m, o, e: None))


@dataclass
class ListingRuntime:
    settings: ListingSettings
    pool: object  # asyncpg pool of the workers
    producer: object  # aiokafka producer: the relay and the DLQ
    probe: ListingProbe
    consumer_probe: object
    relay_wake: Wakeup = field(default_factory=Wakeup)
    deps: Deps = field(init=False)
    relay: OutboxRelay = field(init=False)
    parking: ParkedCommands | None = field(init=False)
    consumers: list[EventConsumer] = field(init=False, default_factory=list)
    _tasks: list[asyncio.Task] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.deps = build_deps(s, self.pool, observe_decisions(self.probe, self.relay_wake))
        self.parking = ParkedCommands(self.pool) if s.person_wait_s > 0 else None
        self.relay = listing_relay(self.pool, self.producer, s.source, s.platform.topic_prefix, s.relay_batch,
                                  self.probe)

    def _consumer(self, suffix: str, topics: tuple[str, ...], handlers: Mapping[str, Handler],
                  message_id: Callable[[Envelope], str], chunk_size: int = 1,
                  chunk: Callable[..., Awaitable[Any]] = handle_chunk,
                  parking: ParkedCommands | None = None) -> EventConsumer:
        s = self.settings
        consumer = KeyedEventConsumer(
            ConsumerSettings(bootstrap=s.platform.kafka_bootstrap,
                             group_id=s.platform.topic_prefix + group_id(s, suffix),
                             topics=topics, name=f"listing-{suffix}", topic_prefix=s.platform.topic_prefix,
                             max_records=max(500, chunk_size),
                             connection=s.platform.kafka_connection(),
                             group_instance_id=s.platform.replica_name),
            handle=envelope_handler(self.deps, handlers, self.probe, s.conflict_retries, message_id, parking),
            dlq_producer=self.producer, probe=self.consumer_probe,
        )
        consumer.concurrency = s.consumer_concurrency
        if chunk_size > 1:
            consumer.batch_handler = chunk_handler(self.deps, handlers, self.probe, message_id, parking, chunk)
            consumer.batch_size = chunk_size
        return consumer

    async def start(self, *, consume: bool = True, relay: bool = True, kpi_snapshots: bool = True,
                    consent_expiry: bool = True) -> None:
        if consume:
            self.consumers = [
                self._consumer(COMMANDS, command_topics(), COMMAND_HANDLERS, lambda e: str(e.data["command_id"]),
                               chunk_size=self.settings.command_chunk_size, parking=self.parking),
                self._consumer(FACTS, fact_topics(), FACT_HANDLERS, lambda e: e.id,
                               chunk_size=self.settings.fact_chunk_size, chunk=handle_fact_chunk),
            ]
            for consumer in self.consumers:
                await consumer.start()
                self._spawn(consumer.settings.name, consumer.run)
            if self.parking is not None:
                self._spawn("parked-commands", self._release_loop)
            groups = {c.settings.name: c.settings.group_id for c in self.consumers}
            self._spawn("consumer-lag", lambda: report_group_lag(
                self.settings.platform.kafka_bootstrap, groups, self.consumer_probe.group_lag,
                self.settings.platform.kafka_connection()))
        if relay:
            self._spawn("relay", self._relay_loop)
        if kpi_snapshots and self.settings.kpi_snapshot_interval_s > 0:
            self._spawn("kpi-snapshots", self._kpi_snapshot_loop)
        if consent_expiry and self.settings.consent_expiry_interval_s > 0:
            self._spawn("consent-expiry", self._consent_expiry_loop)

    async def stop(self) -> None:
        for consumer in self.consumers:
            await consumer.stop()
        await stop_tasks(self._tasks, log)
        self._tasks.clear()
        try:  # what was decided before the stop is published now, not at the next start
            await self.relay.publish_all()
        except Exception:  # noqa: BLE001 - the next start publishes it
            log.warning("listing relay: outbox not drained at stop; it is published at the next start")

    def _spawn(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(supervised_task(f"listing-{name}", body, log))

    async def _relay_loop(self) -> None:
        loop = asyncio.get_running_loop()
        gauge_at = 0.0
        while True:
            await self.relay.publish_all()
            if loop.time() >= gauge_at:  # the pending counts are queries: at most once a second
                self.probe.outbox_pending(await self.relay.pending())
                self.probe.consents_pending(await open_pending_listings(self.pool))
                gauge_at = loop.time() + 1.0
            await self.relay_wake.wait(self.settings.relay_interval_s)
            # gather the decisions of the next few milliseconds into one batch (one transaction and
            # one round of acknowledgements instead of one per decision)
            await asyncio.sleep(self.settings.relay_batch_window_s)

    async def _release_loop(self) -> None:
        while True:
            if not await self.release_parked():
                await asyncio.sleep(self.settings.parked_release_interval_s)

    async def release_parked(self, limit: int = 500) -> int:
        """One pass over the parked commands: the oldest of every person who is known now or has
        waited ``person_wait_s`` goes to the handlers (the latter are rejected person_unknown).
        Returns how many were handled; the database being away propagates (the loop pauses)."""
        assert self.parking is not None
        s = self.settings
        waited_since = datetime.now(timezone.utc) - timedelta(seconds=s.person_wait_s)
        ready = await self.parking.releasable(waited_since, limit)
        for parked in ready:
            outcome = await self._release(parked)
            await self.parking.remove(parked.message.message_id)  # after the handler committed
            self.probe.released(outcome)
        waiting, oldest_age = await self.parking.waiting()
        self.probe.parked_waiting(waiting)
        self.probe.parked_oldest(oldest_age, s.person_wait_s)
        return len(ready)

    async def _release(self, parked: ParkedCommand) -> str:
        s = self.settings
        try:
            outcome = await handle_message(parked.message, self.deps, self.probe, s.conflict_retries,
                                           COMMAND_HANDLERS)
        except (InvalidMessage, KeyError) as exc:
            await self._dead_letter(parked, f"released after waiting for its person: {exc}")
            return "dead_lettered"
        waited_out = bool(outcome.rejection) and outcome.rejection.get("reason_code") == "person_unknown"
        return "waited_out" if waited_out else "person_known"

    async def _dead_letter(self, parked: ParkedCommand, reason: str) -> None:
        from flk.events.dlq import FailedMessage, send_to_dlq
        from flk.events.envelope import wrap_trusted_record

        e = parked.envelope  # its data passed the contract check when it was consumed
        record = wrap_trusted_record(e.event_type, e.data, key=e.key, source=e.source, event_id=e.id, time=e.time)
        failed = FailedMessage(topic=self.settings.platform.topic_prefix + record.topic, partition=-1, offset=-1,
                               key=record.key, value=record.value, headers=tuple(record.headers))
        await send_to_dlq(self.producer, failed, reason, "listing-parked-commands")

    async def _consent_expiry_loop(self) -> None:
        """P3: expire the pending listing requests whose wait is over. A full batch is followed at once
        by the next; the database being away is logged and tried again after the interval."""
        s = self.settings
        while True:
            try:
                expired = await expire_consents(self.deps)
            except Exception as exc:  # noqa: BLE001 - e.g. the database is away: tried again, quietly
                log.warning("listing consent expiry not run (%s); trying again in %g s",
                            type(exc).__name__, s.consent_expiry_interval_s)
                self.probe.consent_sweep("failed", 0)
                expired = 0
            else:
                self.probe.consent_sweep("ok", expired)
            if expired:
                log.info("listing: %d pending listing request(s) of minors expired without consent", expired)
            if expired < 500:
                await asyncio.sleep(s.consent_expiry_interval_s)

    async def _kpi_snapshot_loop(self) -> None:
        s = self.settings
        while True:
            try:
                days = await store_finished_days(self.pool, s.today(), s.kpi_catch_up_days)
            except Exception as exc:  # noqa: BLE001 - e.g. the database is away: tried again, quietly
                log.warning("listing goal KPI snapshot not stored (%s); trying again in %g s",
                            type(exc).__name__, min(s.kpi_snapshot_interval_s, 60.0))
                await asyncio.sleep(min(s.kpi_snapshot_interval_s, 60.0))
                continue
            if days:
                log.info("listing goal KPIs stored for %d finished day(s), %s to %s", len(days), days[0], days[-1])
            await asyncio.sleep(s.kpi_snapshot_interval_s)
