"""In-memory fakes of the notifier's gap-detection port (``CareStore`` in adapters/care_store.py) and
its unit of work, so ``CareGapDetection`` (service_layer/detection.py) runs in unit tests without
PostgreSQL. The care_gap rows keep what the table keeps (one row per gap id, closed by its resolution);
the unique index of open gaps, row locks and SKIP LOCKED are the integration tests' to check
(tests/integration/notifier)."""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notifier.adapters.outbound import OutboxEvent
from services.notifier.domain.care_gaps import (
    CareGapOpened,
    CareGapResolved,
    GapEvent,
    PatientCareState,
)
from tests.support.fake_unit_of_work import InMemoryUnitOfWork


@dataclass
class GapRow:
    opened: CareGapOpened
    resolved: CareGapResolved | None = None


@dataclass
class FakeCareStore:
    inbox: dict[str, str] = field(default_factory=dict)  # event id -> event type
    states: dict[str, tuple[PatientCareState, datetime | None]] = field(default_factory=dict)
    gaps: dict[uuid.UUID, GapRow] = field(default_factory=dict)
    outbox: dict[str, OutboxEvent] = field(default_factory=dict)  # by event id, in insertion order

    def open_gaps(self, patient_key: str) -> list[CareGapOpened]:
        return [g.opened for g in self.gaps.values() if g.resolved is None and g.opened.patient_key == patient_key]

    async def claim_inbox(self, event_id: str, event_type: str, now: datetime) -> bool:
        return bool(await self.claim_inbox_many([(event_id, event_type)], now))

    async def claim_inbox_many(self, claims: list[tuple[str, str]], now: datetime) -> set[str]:
        fresh = set()
        for event_id, event_type in claims:
            if event_id not in self.inbox:
                self.inbox[event_id] = event_type
                fresh.add(event_id)
        return fresh

    async def load_state(self, patient_key: str, *, skip_locked: bool = False
                         ) -> tuple[PatientCareState, datetime | None] | None:
        return self.states.get(patient_key)

    async def load_states(self, patient_keys: list[str]) -> dict[str, tuple[PatientCareState, datetime | None]]:
        return {k: self.states[k] for k in sorted(patient_keys) if k in self.states}

    async def save_state(self, state: PatientCareState, next_wakeup: datetime | None, now: datetime) -> None:
        self.states[state.patient_key] = (state, next_wakeup)

    async def save_states(self, states: list[tuple[PatientCareState, datetime | None]], now: datetime) -> None:
        for state, wake in states:
            await self.save_state(state, wake, now)

    async def record_gap_events(self, events: list[GapEvent]) -> None:
        for event in events:
            if isinstance(event, CareGapOpened):
                self.gaps.setdefault(event.gap_id, GapRow(event))
            elif isinstance(event, CareGapResolved):
                row = self.gaps.get(event.gap_id)
                if row is not None and row.resolved is None:
                    row.resolved = event

    async def record_gap_events_many(self, events: list[GapEvent]) -> None:
        await self.record_gap_events(events)

    async def add_outbox(self, events: list[OutboxEvent]) -> None:
        for event in events:
            self.outbox.setdefault(event.event_id, event)

    async def due_patients(self, now: datetime, limit: int) -> list[str]:
        due = sorted((wake, key) for key, (_, wake) in self.states.items() if wake is not None and wake <= now)
        return [key for _, key in due[:limit]]


class FakeCareUnitOfWork(InMemoryUnitOfWork):
    """Commits when the block ends normally; otherwise the store is restored (a rolled-back transaction)."""

    def __init__(self, store: FakeCareStore | None = None) -> None:
        super().__init__()
        self.store = store or FakeCareStore()

    def _snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(vars(self.store))

    def _restore(self, before: dict[str, Any]) -> None:
        vars(self.store).update(before)