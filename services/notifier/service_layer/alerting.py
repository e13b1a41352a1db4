"""Alert planning: per unit, ``plan_alerts`` decides; the decision is queued durably.

Planning one unit is one transaction: lock the unit's routing row (planners serialise per unit),
read its open gaps through the view without patient keys, look up which of the candidate dedup
ids were already planned, and insert each new alert with its dedup ids and one pending delivery
per channel. Queuing (rather than recording "sent" after the send) is what makes an alert go out
once: the deliveries are retried until they succeed or give up, and the planner never plans the
same gap again. The delivery worker is woken after the commit.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.notifier.adapters import alert_store
from services.notifier.adapters.clock import Clock
from services.notifier.adapters.metrics import NotifierProbe, NullProbe
from services.notifier.domain.alerts import (
    Alert,
    OpenGapRow,
    UnitRouting,
    alert_id_for_digest,
    alert_id_for_escalated_gap,
    alert_id_for_new_gap,
    next_planning_time,
    plan_alerts,
    summarize,
)

log = logging.getLogger(__name__)


def _candidate_ids(routing: UnitRouting, rows: list[OpenGapRow], now: datetime) -> set[uuid.UUID]:
    """Every dedup id plan_alerts / next_planning_time may ask about for these rows."""
    ids: set[uuid.UUID] = set()
    for r in rows:
        ids.add(alert_id_for_new_gap(routing.unit_id, r.gap_id))
        ids.add(alert_id_for_escalated_gap(routing.unit_id, r.gap_id))
    today = now.astimezone(routing.tz).date()
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        ids.add(alert_id_for_digest(routing.unit_id, day))
    return ids


@dataclass
class AlertPlanner:
    pool: object
    clock: Clock
    probe: NotifierProbe = field(default_factory=NullProbe)
    on_planned: Callable[[], None] = lambda: None
    concurrency: int = 4
    #: per unit, what its last planning saw (routing, open gaps) and when to plan it again: a unit
    #: planned again with the same routing and gaps before that time gets no alert (the contract of
    #: ``next_planning_time``), so the decision is not recomputed (most sweeps find nothing changed)
    _last: dict[str, tuple[UnitRouting, frozenset[OpenGapRow], datetime | None]] = field(default_factory=dict)
    #: per unit, its open gaps as last read (alert_store.open_gap_rows), and which of its candidate dedup
    #: ids are known to be planned: a dedup id, once written, is never deleted, so only the others are
    #: looked up (whoever planned them: another replica's are found there)
    _rows: dict[str, dict[tuple, OpenGapRow]] = field(default_factory=dict)
    _known_sent: dict[str, set[uuid.UUID]] = field(default_factory=dict)

    async def plan_unit(self, unit_id: str) -> tuple[list[Alert], datetime | None]:
        """Plan and queue the unit's due alerts; also when to plan it again (None: on change)."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                routing = await alert_store.get_routing(conn, unit_id, for_update=True)
                if routing is None:
                    return [], None  # no routing: nobody to alert (gaps stay visible in the API)
                now = self.clock.now()
                rows = await alert_store.open_gap_rows(conn, unit_id, self._rows.setdefault(unit_id, {}))
                seen = frozenset(rows)
                last = self._last.get(unit_id)
                if last is not None and last[0] == routing and last[1] == seen and (last[2] is None or now < last[2]):
                    return [], last[2]
                candidates = _candidate_ids(routing, rows, now)
                known = self._known_sent.get(unit_id, set()) & candidates
                sent = known | await alert_store.sent_ids(conn, candidates - known)
                alerts = plan_alerts(routing, rows, sent, now)
                queued: list[Alert] = []
                summary = summarize(unit_id, rows, now) if alerts else None
                for alert in alerts:
                    if await alert_store.insert_alert(conn, alert, summary, now):
                        queued.append(alert)
                        sent |= alert.dedup_ids
                next_at = next_planning_time(routing, rows, sent, now)
            # (committed: what this transaction planned is planned)
            self._last[unit_id] = (routing, seen, next_at)
            self._known_sent[unit_id] = sent & candidates
        for alert in queued:
            self.probe.alert_planned(alert.kind.value)
        if queued:
            self.on_planned()
        return queued, next_at

    async def plan_units(self, units: list[str]) -> datetime | None:
        """Plan several units concurrently (each in its own transaction, locked per unit);
        the earliest next planning time."""
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(unit: str) -> datetime | None:
            async with semaphore:
                return (await self.plan_unit(unit))[1]

        times = [t for t in await asyncio.gather(*(one(u) for u in units)) if t is not None]
        return min(times, default=None)

    async def plan_all(self) -> datetime | None:
        """Plan every routed unit; the earliest next planning time."""
        async with self.pool.acquire() as conn:
            units = await alert_store.routed_unit_ids(conn)
        return await self.plan_units(units)
