"""Care-gap detection: consumed events -> facts -> pure domain -> one PostgreSQL transaction (a unit of
work over the ``CareStore`` port, adapters/care_store.py).

Per consumed batch (``handle_batch``, the consumer's batch handler) or per message (``handle``,
the fallback that isolates a poison message), in ONE transaction: the inbox rows (a redelivered
event id changes nothing), the patients' new states and next wake-ups, the care_gap rows, and the
outbox rows of ``care_gap.opened`` / ``care_gap.resolved``. A batch takes a fixed number of
statements whatever its size (claim, load, save, gaps, outbox). The ticker applies ``Tick(now)`` to the patients
whose ``next_wakeup`` has passed (grace periods ending), through an index, never a full scan.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from dataclasses import dataclass, field

from flk.events.consumer import TransientFailure
from flk.events.envelope import Envelope
from services.notifier.adapters.care_store import CareUnitOfWork
from services.notifier.adapters.clock import Clock
from flk.db.errors import is_transient_database_error
from services.notifier.adapters.inbound import FactMapper
from services.notifier.adapters.metrics import NotifierProbe, NullProbe
from services.notifier.adapters.outbound import gap_event
from services.notifier.domain.care_gaps import CarePolicy, GapEvent, Tick, apply, initial_state, next_wakeup

log = logging.getLogger(__name__)

#: called after a commit with the units whose open gaps changed (wakes the alert planner and relay)
GapsChanged = Callable[[set[str]], None]


def _noop(units: set[str]) -> None:
    return None


@dataclass
class CareGapDetection:
    pool: object  # asyncpg pool
    clock: Clock
    policy: CarePolicy
    mapper: FactMapper
    probe: NotifierProbe = field(default_factory=NullProbe)
    on_change: GapsChanged = _noop
    tick_batch: int = 500
    #: the unit of work per transaction (``uow.store``: the CareStore port); None: CareUnitOfWork(pool).
    #: Unit tests give the in-memory fake (tests/support/notifier_fakes.py).
    uow_factory: Callable[[], Any] | None = None

    def _uow(self) -> Any:
        return self.uow_factory() if self.uow_factory is not None else CareUnitOfWork(self.pool)

    async def handle(self, envelope: Envelope) -> None:
        """The EventConsumer handler. Database unavailable -> TransientFailure (retried)."""
        facts = self.mapper.facts(envelope)
        if not facts:
            return
        try:
            events = await self._apply(envelope, facts)
        except Exception as exc:
            if is_transient_database_error(exc):
                raise TransientFailure(type(exc).__name__) from exc
            raise
        if events is None:
            self.probe.duplicate(envelope.event_type)
            return
        self._after_commit(events)

    async def handle_batch(self, envelopes: list[Envelope]) -> None:
        """The consumer's batch handler: the envelopes (arrival order) in one transaction.
        Database unavailable -> TransientFailure (the whole batch retried); any other error
        propagates and the consumer handles the batch one message at a time through ``handle``."""
        work: list[tuple[Envelope, list]] = []
        seen: set[str] = set()
        repeated: list[Envelope] = []
        for envelope in envelopes:
            facts = self.mapper.facts(envelope)
            if not facts:
                continue
            if envelope.id in seen:
                repeated.append(envelope)  # the same id twice in one batch: the first one counts
                continue
            seen.add(envelope.id)
            work.append((envelope, facts))
        if not work and not repeated:
            return
        try:
            events, duplicates = await self._apply_batch(work)
        except Exception as exc:
            if is_transient_database_error(exc):
                raise TransientFailure(type(exc).__name__) from exc
            raise
        for envelope in duplicates + repeated:
            self.probe.duplicate(envelope.event_type)
        self._after_commit(events)

    async def _apply_batch(self, work: list[tuple[Envelope, list]]) -> tuple[list[GapEvent], list[Envelope]]:
        async with self._uow() as uow:
            store = uow.store
            now = self.clock.now()
            fresh = await store.claim_inbox_many([(e.id, e.event_type) for e, _ in work], now)
            duplicates = [e for e, _ in work if e.id not in fresh]
            work = [(e, facts) for e, facts in work if e.id in fresh]
            by_patient: dict[str, list] = {}
            for envelope, facts in work:
                by_patient.setdefault(envelope.key, []).extend(facts)  # arrival order per patient
            loaded = await store.load_states(list(by_patient))
            events: list[GapEvent] = []
            changed: list[tuple] = []
            for key in sorted(by_patient):
                stored = loaded.get(key)
                before = stored[0] if stored else None
                state = before or initial_state(key)
                for fact in by_patient[key]:
                    state, produced = apply(state, fact, now, self.policy)
                    events.extend(produced)
                wake = next_wakeup(state, now, self.policy)
                if state != before or stored is None or wake != stored[1]:
                    changed.append((state, wake))
            await store.save_states(changed, now)
            await store.record_gap_events_many(events)
            await store.add_outbox([gap_event(e) for e in events])
            return events, duplicates

    async def _apply(self, envelope: Envelope, facts: list) -> list[GapEvent] | None:
        async with self._uow() as uow:
            store = uow.store
            now = self.clock.now()
            if not await store.claim_inbox(envelope.id, envelope.event_type, now):
                return None
            key = envelope.key
            loaded = await store.load_state(key)
            before = loaded[0] if loaded else None
            state = before or initial_state(key)
            events: list[GapEvent] = []
            for fact in facts:
                state, produced = apply(state, fact, now, self.policy)
                events.extend(produced)
            wake = next_wakeup(state, now, self.policy)
            if state != before or loaded is None or wake != loaded[1]:
                await store.save_state(state, wake, now)
            await self._record(store, events)
            return events

    async def _record(self, store: Any, events: list[GapEvent]) -> None:
        await store.record_gap_events(events)
        await store.add_outbox([gap_event(e) for e in events])

    def _after_commit(self, events: Iterable[GapEvent]) -> None:
        units: set[str] = set()
        for e in events:
            units.add(e.unit_id)
            self.probe.gap_event(type(e).__name__, e.unit_id)
        if units:
            self.on_change(units)

    async def tick_due(self) -> int:
        """Apply Tick(now) to every patient whose next_wakeup has passed; the number ticked."""
        ticked = 0
        while True:
            now = self.clock.now()
            async with self._uow() as uow:
                keys = await uow.store.due_patients(now, self.tick_batch)
            for key in keys:
                events = await self._tick_one(key, now)
                if events is not None:
                    ticked += 1
                    self._after_commit(events)
            if len(keys) < self.tick_batch:
                return ticked

    async def _tick_one(self, key: str, now) -> list[GapEvent] | None:
        async with self._uow() as uow:
            store = uow.store
            loaded = await store.load_state(key, skip_locked=True)
            if loaded is None:
                return None  # being handled by the consumer right now: next round
            state, stored_wakeup = loaded
            if stored_wakeup is None or stored_wakeup > now:
                return None
            state, events = apply(state, Tick(now=now, patient_key=key), now, self.policy)
            await store.save_state(state, next_wakeup(state, now, self.policy), now)
            await self._record(store, events)
            return events
