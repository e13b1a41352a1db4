"""Who is alerted about care gaps, when, and about what: pure decisions (no I/O).

Inputs are per-unit routing settings and the unit's open gaps as :class:`OpenGapRow` — a row
that structurally has **no patient key** (docs/domain.md §6, P2): alerts only count patients and
link to the unit's worklist, which requires login.

Kinds of alert:

* ``new_gaps`` (mode ``immediate``): one alert for the batch of open gaps not alerted before.
  Every gap has its own dedup id, so a gap is announced once, whatever batch it falls in.
* ``daily_digest`` (mode ``daily_digest``, the default): one per unit and local day, at
  ``digest_hour`` (Europe/Stockholm), only when gaps are open (``digest_when_empty``).
* ``escalation``: once per gap, when it has been open ``escalation_after_days``; the gaps that
  cross the limit together go in one alert to ``escalation_email``.

Quiet hours (local time; ``22:00–07:00`` wraps midnight) defer every kind: nothing is due while
they last, and :func:`next_planning_time` says when to plan again. Planning is re-run, not
queued: a deferred alert is planned afresh at the end of the quiet hours with the counts of
that moment. Alert ids are uuid5 of unit + kind + local date or gap ids, so a resend is
detected from ``already_sent_alert_ids``; after a successful send the caller records every id
in :attr:`Alert.dedup_ids`.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import AbstractSet, Iterable
from zoneinfo import ZoneInfo

from services.notifier.domain.care_gaps import CareGapOpened, GapCause, GapKind

__all__ = [
    "ALERT_NAMESPACE",
    "Alert",
    "AlertKind",
    "AlertMode",
    "OpenGapRow",
    "QuietHours",
    "UnitGapSummary",
    "UnitRouting",
    "alert_id_for_digest",
    "alert_id_for_escalated_gap",
    "alert_id_for_new_gap",
    "next_planning_time",
    "plan_alerts",
    "summarize",
]

ALERT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flk-primarvard:notifier:alert")
DEFAULT_TIMEZONE = "Europe/Stockholm"


class AlertMode(StrEnum):
    IMMEDIATE = "immediate"
    DAILY_DIGEST = "daily_digest"


class AlertKind(StrEnum):
    NEW_GAPS = "new_gaps"
    DAILY_DIGEST = "daily_digest"
    ESCALATION = "escalation"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A local-time window ``[start, end)``; ``start > end`` wraps midnight (22:00–07:00).
    ``start == end`` is an empty window."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        local = local.replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """The first end of the window strictly after ``moment`` (in ``tz``)."""
        local = moment.astimezone(tz)
        candidate = _local(local.date(), self.end, tz)
        if candidate <= moment:
            candidate = _local(local.date() + timedelta(days=1), self.end, tz)
        return candidate


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz)


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value)


@dataclass(frozen=True, slots=True)
class UnitRouting:
    """Where and how one care unit is alerted.

    ``teams_webhook_secret_ref`` is the *name* of the secret that holds the Teams Workflows
    webhook URL (the URL is a credential, engineering.md §4), never the URL itself.
    """

    unit_id: str
    unit_name: str
    email_to: tuple[str, ...] = ()
    teams_webhook_secret_ref: str | None = None
    mode: AlertMode = AlertMode.DAILY_DIGEST
    digest_hour: int = 7
    quiet_hours: QuietHours | None = QuietHours(time(22, 0), time(7, 0))
    escalation_after_days: int | None = 14
    escalation_email: tuple[str, ...] = ()
    digest_when_empty: bool = False
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "email_to", _as_tuple(self.email_to))
        object.__setattr__(self, "escalation_email", _as_tuple(self.escalation_email))
        object.__setattr__(self, "mode", AlertMode(self.mode))
        ref = self.teams_webhook_secret_ref
        if ref is not None and "://" in ref:
            raise ValueError("teams_webhook_secret_ref must name a secret, not hold the webhook URL")
        if not 0 <= self.digest_hour <= 23:
            raise ValueError("digest_hour must be 0..23")
        if self.escalation_after_days is not None and self.escalation_after_days < 1:
            raise ValueError("escalation_after_days must be >= 1 (or None: no escalation)")
        ZoneInfo(self.timezone)  # fail fast on an unknown zone
        if (
            self.mode is AlertMode.DAILY_DIGEST
            and self.quiet_hours is not None
            and self.quiet_hours.contains(time(self.digest_hour))
        ):
            raise ValueError("digest_hour falls inside quiet_hours")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def has_unit_channel(self) -> bool:
        return bool(self.email_to) or self.teams_webhook_secret_ref is not None

    def in_quiet_hours(self, now: datetime) -> bool:
        return self.quiet_hours is not None and self.quiet_hours.contains(now.astimezone(self.tz).time())

    def digest_at(self, day: date) -> datetime:
        return _local(day, time(self.digest_hour), self.tz)


# --------------------------------------------------------------------------------------------
# Gap rows and the unit summary (no patient identifiers, by construction)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenGapRow:
    """An open gap as the notifier keeps it: **no patient key, name or personnummer**.

    ``gap_id`` is a uuid5 (not reversible to the patient) used only for deduplication and is
    never rendered into a message.
    """

    gap_id: uuid.UUID
    unit_id: str
    cause: GapCause
    rub: int | None
    sabo: bool
    opened_at: datetime
    kind: GapKind = GapKind.FAST_LAKARKONTAKT

    @classmethod
    def from_opened(cls, event: CareGapOpened) -> OpenGapRow:
        """Drop the patient key from a ``CareGapOpened`` event."""
        return cls(
            gap_id=event.gap_id,
            unit_id=event.unit_id,
            cause=event.cause,
            rub=event.rub,
            sabo=event.sabo,
            opened_at=event.opened_at,
            kind=event.kind,
        )


@dataclass(frozen=True, slots=True)
class UnitGapSummary:
    """Counts of one unit's open gaps, with nothing that identifies a patient."""

    unit_id: str
    as_of: datetime
    total: int
    by_cause: tuple[tuple[GapCause, int], ...]
    """Non-zero counts, in the order of :class:`GapCause`."""
    by_rub: tuple[tuple[int | None, int], ...]
    """Non-zero counts by RUB band, highest first; ``None`` = no assessment."""
    sabo: int
    """Gaps of SÄBO residents (they may also be counted under a RUB band)."""
    oldest_age_days: int | None
    """Whole days since the oldest open gap opened; None when there is none."""
    by_kind: tuple[tuple[GapKind, int], ...] = ()
    """Non-zero counts by what the patients lack, in the order of :class:`GapKind`."""

    def count_for(self, cause: GapCause) -> int:
        return dict(self.by_cause).get(cause, 0)

    def count_for_rub(self, rub: int | None) -> int:
        return dict(self.by_rub).get(rub, 0)


def _age_days(opened_at: datetime, now: datetime) -> int:
    return max(0, (now - opened_at) // timedelta(days=1))


def summarize(unit_id: str, rows: Iterable[OpenGapRow], now: datetime) -> UnitGapSummary:
    rows = list(rows)
    if any(r.unit_id != unit_id for r in rows):
        raise ValueError("rows of another unit in the summary")
    causes = Counter(r.cause for r in rows)
    rubs = Counter(r.rub for r in rows)
    kinds = _kind_counts(rows)
    return UnitGapSummary(
        unit_id=unit_id,
        as_of=now,
        total=len(rows),
        by_cause=tuple((c, causes[c]) for c in GapCause if causes[c]),
        by_rub=tuple(
            sorted(rubs.items(), key=lambda item: -1 if item[0] is None else item[0], reverse=True)
        ),
        sabo=sum(1 for r in rows if r.sabo),
        oldest_age_days=max((_age_days(r.opened_at, now) for r in rows), default=None),
        by_kind=kinds,
    )


def _kind_counts(rows: Iterable[OpenGapRow]) -> tuple[tuple[GapKind, int], ...]:
    kinds = Counter(r.kind for r in rows)
    return tuple((k, kinds[k]) for k in GapKind if kinds[k])


# --------------------------------------------------------------------------------------------
# Alerts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to send (by email and/or Teams). ``gap_ids`` are kept for the audit trail
    and are never rendered."""

    alert_id: uuid.UUID
    kind: AlertKind
    unit_id: str
    unit_name: str
    gap_count: int
    """Gaps this alert is about: new ones, escalated ones, or all open (digest)."""
    email_to: tuple[str, ...]
    teams_webhook_secret_ref: str | None
    dedup_ids: frozenset[uuid.UUID]
    """Record all of these as sent after a successful send."""
    gap_ids: tuple[uuid.UUID, ...] = ()
    digest_date: date | None = None
    escalation_after_days: int | None = None
    gap_kinds: tuple[tuple[GapKind, int], ...] = ()
    """How many of this alert's gaps are of each kind (what the patients lack); empty: all FLK
    gaps (an alert planned before gap kinds existed)."""

    @property
    def kinds(self) -> frozenset[GapKind]:
        return frozenset(k for k, n in self.gap_kinds if n) or frozenset({GapKind.FAST_LAKARKONTAKT})


def _name(*parts: object) -> uuid.UUID:
    return uuid.uuid5(ALERT_NAMESPACE, "|".join(str(p) for p in parts))


#: the gap alerts' ids are asked for every open gap at each planning of its unit (a uuid5 each):
#: remembered, as they never change
@lru_cache(maxsize=1 << 16)
def alert_id_for_new_gap(unit_id: str, gap_id: uuid.UUID) -> uuid.UUID:
    return _name(unit_id, AlertKind.NEW_GAPS.value, gap_id)


@lru_cache(maxsize=1 << 16)
def alert_id_for_escalated_gap(unit_id: str, gap_id: uuid.UUID) -> uuid.UUID:
    return _name(unit_id, AlertKind.ESCALATION.value, gap_id)


def alert_id_for_digest(unit_id: str, day: date) -> uuid.UUID:
    return _name(unit_id, AlertKind.DAILY_DIGEST.value, day.isoformat())


def _batch_id(unit_id: str, kind: AlertKind, gap_ids: Iterable[uuid.UUID]) -> uuid.UUID:
    return _name(unit_id, kind.value, "batch", ",".join(sorted(str(g) for g in gap_ids)))


def _unit_rows(routing: UnitRouting, open_gaps: Iterable[OpenGapRow]) -> list[OpenGapRow]:
    return sorted(
        (r for r in open_gaps if r.unit_id == routing.unit_id),
        key=lambda r: (r.opened_at, str(r.gap_id)),
    )


def _overdue(routing: UnitRouting, row: OpenGapRow, now: datetime) -> bool:
    days = routing.escalation_after_days
    return days is not None and now - row.opened_at >= timedelta(days=days)


def plan_alerts(
    routing: UnitRouting,
    open_gaps: Iterable[OpenGapRow],
    already_sent_alert_ids: AbstractSet[uuid.UUID],
    now: datetime,
) -> list[Alert]:
    """The alerts due for one unit at ``now`` (rows of other units are ignored)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rows = _unit_rows(routing, open_gaps)
    if routing.in_quiet_hours(now):
        return []
    sent = already_sent_alert_ids
    alerts: list[Alert] = []

    if routing.has_unit_channel and routing.mode is AlertMode.IMMEDIATE:
        new = [r for r in rows if alert_id_for_new_gap(routing.unit_id, r.gap_id) not in sent]
        if new:
            ids = tuple(r.gap_id for r in new)
            batch = _batch_id(routing.unit_id, AlertKind.NEW_GAPS, ids)
            if batch not in sent:
                alerts.append(
                    Alert(
                        alert_id=batch,
                        kind=AlertKind.NEW_GAPS,
                        unit_id=routing.unit_id,
                        unit_name=routing.unit_name,
                        gap_count=len(new),
                        email_to=routing.email_to,
                        teams_webhook_secret_ref=routing.teams_webhook_secret_ref,
                        dedup_ids=frozenset({batch, *(alert_id_for_new_gap(routing.unit_id, g) for g in ids)}),
                        gap_ids=ids,
                        gap_kinds=_kind_counts(new),
                    )
                )

    if routing.has_unit_channel and routing.mode is AlertMode.DAILY_DIGEST:
        today = now.astimezone(routing.tz).date()
        digest_id = alert_id_for_digest(routing.unit_id, today)
        if (
            now >= routing.digest_at(today)
            and digest_id not in sent
            and (rows or routing.digest_when_empty)
        ):
            alerts.append(
                Alert(
                    alert_id=digest_id,
                    kind=AlertKind.DAILY_DIGEST,
                    unit_id=routing.unit_id,
                    unit_name=routing.unit_name,
                    gap_count=len(rows),
                    email_to=routing.email_to,
                    teams_webhook_secret_ref=routing.teams_webhook_secret_ref,
                    dedup_ids=frozenset({digest_id}),
                    gap_ids=tuple(r.gap_id for r in rows),
                    digest_date=today,
                    gap_kinds=_kind_counts(rows),
                )
            )

    overdue = [
        r
        for r in rows
        if _overdue(routing, r, now)
        and alert_id_for_escalated_gap(routing.unit_id, r.gap_id) not in sent
    ]
    if overdue:
        # To the escalation contact; without one, to the unit's own channels.
        if routing.escalation_email:
            email_to, teams = routing.escalation_email, None
        else:
            email_to, teams = routing.email_to, routing.teams_webhook_secret_ref
        if email_to or teams:
            ids = tuple(r.gap_id for r in overdue)
            batch = _batch_id(routing.unit_id, AlertKind.ESCALATION, ids)
            alerts.append(
                Alert(
                    alert_id=batch,
                    kind=AlertKind.ESCALATION,
                    unit_id=routing.unit_id,
                    unit_name=routing.unit_name,
                    gap_count=len(overdue),
                    email_to=email_to,
                    teams_webhook_secret_ref=teams,
                    dedup_ids=frozenset(
                        {batch, *(alert_id_for_escalated_gap(routing.unit_id, g) for g in ids)}
                    ),
                    gap_ids=ids,
                    escalation_after_days=routing.escalation_after_days,
                    gap_kinds=_kind_counts(overdue),
                )
            )
    return alerts


def next_planning_time(
    routing: UnitRouting,
    open_gaps: Iterable[OpenGapRow],
    already_sent_alert_ids: AbstractSet[uuid.UUID],
    now: datetime,
) -> datetime | None:
    """When :func:`plan_alerts` may next return something although no gap opened or closed:
    the end of the quiet hours (if something is waiting), the next digest, the next
    escalation. ``None``: nothing to wait for."""
    rows = _unit_rows(routing, open_gaps)
    candidates: list[datetime] = []
    if routing.in_quiet_hours(now):
        assert routing.quiet_hours is not None
        end = routing.quiet_hours.end_after(now, routing.tz)
        if plan_alerts(routing, rows, already_sent_alert_ids, end):
            candidates.append(end)
    if routing.has_unit_channel and routing.mode is AlertMode.DAILY_DIGEST and (
        rows or routing.digest_when_empty
    ):
        today = now.astimezone(routing.tz).date()
        for day in (today, today + timedelta(days=1)):
            at = routing.digest_at(day)
            if at > now and alert_id_for_digest(routing.unit_id, day) not in already_sent_alert_ids:
                candidates.append(at)
                break
    if routing.escalation_after_days is not None:
        limit = timedelta(days=routing.escalation_after_days)
        for r in rows:
            at = r.opened_at + limit
            if at > now and alert_id_for_escalated_gap(routing.unit_id, r.gap_id) not in already_sent_alert_ids:
                if routing.in_quiet_hours(at):
                    assert routing.quiet_hours is not None
                    at = routing.quiet_hours.end_after(at, routing.tz)
                candidates.append(at)
    return min(candidates) if candidates else None
