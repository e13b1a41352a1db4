"""PostgreSQL persistence of the alert path: routing, planned alerts, deliveries, the delivery log.

Privacy by construction: this module never selects a patient key. Open gaps are read through
the view ``notifier.open_care_gap_for_alerting``, which has no patient key column, and alert
rows hold counts only (a test checks that this file never names the patient key column).
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from services.notifier.adapters.outbound import OutboxEvent
from services.notifier.domain.alerts import Alert, AlertKind, AlertMode, OpenGapRow, QuietHours, UnitGapSummary, UnitRouting
from services.notifier.domain.care_gaps import GapCause, GapKind

# ---- routing -----------------------------------------------------------------------------------

_ROUTING_COLUMNS = (
    "care_unit_id, unit_name, email_to, teams_webhook_secret_ref, mode, digest_hour, quiet_start, quiet_end, "
    "escalation_after_days, escalation_email, digest_when_empty, timezone"
)


def routing_from_row(row: Any) -> UnitRouting:
    quiet = None
    if row["quiet_start"] is not None:
        quiet = QuietHours(row["quiet_start"], row["quiet_end"])
    return UnitRouting(
        unit_id=row["care_unit_id"],
        unit_name=row["unit_name"],
        email_to=tuple(row["email_to"]),
        teams_webhook_secret_ref=row["teams_webhook_secret_ref"],
        mode=AlertMode(row["mode"]),
        digest_hour=row["digest_hour"],
        quiet_hours=quiet,
        escalation_after_days=row["escalation_after_days"],
        escalation_email=tuple(row["escalation_email"]),
        digest_when_empty=row["digest_when_empty"],
        timezone=row["timezone"],
    )


async def get_routing(conn, unit_id: str, *, for_update: bool = False) -> UnitRouting | None:
    row = await conn.fetchrow(
        f"SELECT {_ROUTING_COLUMNS} FROM notifier.unit_routing WHERE care_unit_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        unit_id,
    )
    return routing_from_row(row) if row else None


async def list_routing(conn) -> list[UnitRouting]:
    rows = await conn.fetch(f"SELECT {_ROUTING_COLUMNS} FROM notifier.unit_routing ORDER BY care_unit_id")
    return [routing_from_row(r) for r in rows]


async def routed_unit_ids(conn) -> list[str]:
    return [r["care_unit_id"] for r in await conn.fetch("SELECT care_unit_id FROM notifier.unit_routing")]


async def upsert_routing(conn, routing: UnitRouting, updated_by: str | None, now: datetime) -> None:
    q = routing.quiet_hours
    await conn.execute(
        f"INSERT INTO notifier.unit_routing ({_ROUTING_COLUMNS}, updated_at, updated_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        "ON CONFLICT (care_unit_id) DO UPDATE SET unit_name = EXCLUDED.unit_name, email_to = EXCLUDED.email_to, "
        "teams_webhook_secret_ref = EXCLUDED.teams_webhook_secret_ref, mode = EXCLUDED.mode, "
        "digest_hour = EXCLUDED.digest_hour, quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, "
        "escalation_after_days = EXCLUDED.escalation_after_days, escalation_email = EXCLUDED.escalation_email, "
        "digest_when_empty = EXCLUDED.digest_when_empty, timezone = EXCLUDED.timezone, "
        "updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
        routing.unit_id, routing.unit_name, list(routing.email_to), routing.teams_webhook_secret_ref,
        routing.mode.value, routing.digest_hour, q.start if q else None, q.end if q else None,
        routing.escalation_after_days, list(routing.escalation_email), routing.digest_when_empty,
        routing.timezone, now, updated_by,
    )


def routing_to_dict(routing: UnitRouting) -> dict[str, Any]:
    q = routing.quiet_hours
    return {
        "care_unit_id": routing.unit_id,
        "unit_name": routing.unit_name,
        "email_to": list(routing.email_to),
        "teams_webhook_secret_ref": routing.teams_webhook_secret_ref,
        "mode": routing.mode.value,
        "digest_hour": routing.digest_hour,
        "quiet_hours": f"{q.start:%H:%M}-{q.end:%H:%M}" if q else None,
        "escalation_after_days": routing.escalation_after_days,
        "escalation_email": list(routing.escalation_email),
        "digest_when_empty": routing.digest_when_empty,
        "timezone": routing.timezone,
    }


def parse_quiet_hours(text: str | None) -> QuietHours | None:
    """'22:00-07:00' -> QuietHours; None, '' or 'none' -> no quiet hours."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    match = re.fullmatch(r"\s*([0-2][0-9]:[0-5][0-9])\s*-\s*([0-2][0-9]:[0-5][0-9])\s*", text)
    try:
        if match is None:
            raise ValueError
        start, end = time.fromisoformat(match[1]), time.fromisoformat(match[2])
    except ValueError:
        raise ValueError("quiet hours are 'HH:MM-HH:MM' (or 'none')") from None
    return QuietHours(start, end)


# ---- open gaps (no patient key) -------------------------------------------------------------------


async def open_gap_rows(conn, unit_id: str, known: dict[tuple, OpenGapRow] | None = None) -> list[OpenGapRow]:
    """The unit's open gaps. ``known``: the rows of an earlier read, by their values; a row read again
    with the same values is that object (a unit is planned again and again while its gaps change a few
    at a time), and ``known`` is left holding this read's rows."""
    rows = await conn.fetch(
        "SELECT gap_id, care_unit_id, cause, rub, sabo, opened_at, kind FROM notifier.open_care_gap_for_alerting "
        "WHERE care_unit_id = $1",
        unit_id,
    )
    if known is None:
        return [_gap_row(tuple(r)) for r in rows]
    now = {}
    for r in rows:
        values = tuple(r)
        now[values] = known.get(values) or _gap_row(values)
    known.clear()
    known.update(now)
    return list(now.values())


def _gap_row(values: tuple) -> OpenGapRow:
    gap_id, unit_id, cause, rub, sabo, opened_at, kind = values
    return OpenGapRow(gap_id, unit_id, GapCause(cause), rub, sabo, opened_at, GapKind(kind))


async def open_gap_stats(conn) -> dict[str, tuple[int, datetime]]:
    rows = await conn.fetch("SELECT care_unit_id, open_gaps, oldest_opened_at FROM notifier.open_care_gaps_by_unit")
    return {r["care_unit_id"]: (r["open_gaps"], r["oldest_opened_at"]) for r in rows}


async def pending_delivery_stats(conn) -> dict[str, tuple[int, datetime]]:
    """Per channel: deliveries still pending, and when the oldest of them was planned."""
    rows = await conn.fetch(
        "SELECT d.channel, count(*) AS n, min(a.planned_at) AS oldest FROM notifier.alert_delivery d "
        "JOIN notifier.alert a USING (alert_id) WHERE d.status = 'pending' GROUP BY d.channel")
    return {r["channel"]: (r["n"], r["oldest"]) for r in rows}


# ---- planned alerts --------------------------------------------------------------------------------


async def sent_ids(conn, candidates: set[uuid.UUID]) -> set[uuid.UUID]:
    if not candidates:
        return set()
    rows = await conn.fetch("SELECT dedup_id FROM notifier.alert_dedup WHERE dedup_id = ANY($1::uuid[])",
                            list(candidates))
    return {r["dedup_id"] for r in rows}


def summary_to_json(summary: UnitGapSummary) -> dict[str, Any]:
    return {
        "unit_id": summary.unit_id,
        "as_of": summary.as_of.isoformat(),
        "total": summary.total,
        "by_cause": [[c.value, n] for c, n in summary.by_cause],
        "by_rub": [[r, n] for r, n in summary.by_rub],
        "sabo": summary.sabo,
        "oldest_age_days": summary.oldest_age_days,
        "by_kind": [[k.value, n] for k, n in summary.by_kind],
    }


def summary_from_json(raw: dict[str, Any]) -> UnitGapSummary:
    return UnitGapSummary(
        unit_id=raw["unit_id"],
        as_of=datetime.fromisoformat(raw["as_of"]),
        total=raw["total"],
        by_cause=tuple((GapCause(c), n) for c, n in raw["by_cause"]),
        by_rub=tuple((r, n) for r, n in raw["by_rub"]),
        sabo=raw["sabo"],
        oldest_age_days=raw["oldest_age_days"],
        # a summary stored before gap kinds existed: every gap was an FLK gap
        by_kind=tuple((GapKind(k), n) for k, n in raw["by_kind"]) if "by_kind" in raw
        else (((GapKind.FAST_LAKARKONTAKT, raw["total"]),) if raw["total"] else ()),
    )


def gap_kinds_to_json(kinds: tuple[tuple[GapKind, int], ...]) -> dict[str, int]:
    return {k.value: n for k, n in kinds}


def gap_kinds_from_json(raw: dict[str, int]) -> tuple[tuple[GapKind, int], ...]:
    return tuple((k, raw[k.value]) for k in GapKind if raw.get(k.value))


async def insert_alert(conn, alert: Alert, summary: UnitGapSummary, now: datetime) -> bool:
    """Queue an alert: its row, its dedup ids and one pending delivery per channel, due now.
    False (and nothing written) if the alert id exists already."""
    inserted = await conn.fetchval(
        "INSERT INTO notifier.alert (alert_id, care_unit_id, kind, unit_name, gap_count, gap_ids, summary, "
        "digest_date, escalation_after_days, planned_at, gap_kinds) "
        "VALUES ($1, $2, $3, $4, $5, $6::uuid[], $7::jsonb, $8, $9, $10, $11::jsonb) "
        "ON CONFLICT (alert_id) DO NOTHING RETURNING true",
        alert.alert_id, alert.unit_id, alert.kind.value, alert.unit_name, alert.gap_count, list(alert.gap_ids),
        json.dumps(summary_to_json(summary), ensure_ascii=False), alert.digest_date, alert.escalation_after_days, now,
        json.dumps(gap_kinds_to_json(alert.gap_kinds)),
    )
    if not inserted:
        return False
    await conn.executemany(
        "INSERT INTO notifier.alert_dedup (dedup_id, alert_id, care_unit_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (dedup_id) DO NOTHING",
        [(d, alert.alert_id, alert.unit_id) for d in sorted(alert.dedup_ids, key=str)],
    )
    channels: list[tuple[str, list[str], str | None]] = []
    if alert.email_to:
        channels.append(("email", list(alert.email_to), None))
    if alert.teams_webhook_secret_ref:
        channels.append(("teams", [], alert.teams_webhook_secret_ref))
    await conn.executemany(
        "INSERT INTO notifier.alert_delivery (alert_id, channel, recipients, secret_ref, next_attempt_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(alert.alert_id, ch, rcpt, ref, now) for ch, rcpt, ref in channels],
    )
    return True


# ---- deliveries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryJob:
    delivery_id: int
    alert_id: uuid.UUID
    channel: str
    recipients: tuple[str, ...]
    secret_ref: str | None
    attempts: int  # attempts made before this one
    unit_id: str
    unit_name: str
    kind: AlertKind
    gap_count: int
    summary: UnitGapSummary
    digest_date: date | None
    escalation_after_days: int | None
    planned_at: datetime
    gap_kinds: tuple[tuple[GapKind, int], ...] = ()

    def alert(self) -> Alert:
        """The alert to render on this channel (counts only)."""
        return Alert(
            alert_id=self.alert_id, kind=self.kind, unit_id=self.unit_id, unit_name=self.unit_name,
            gap_count=self.gap_count, email_to=self.recipients,
            teams_webhook_secret_ref=self.secret_ref, dedup_ids=frozenset(),
            digest_date=self.digest_date, escalation_after_days=self.escalation_after_days,
            gap_kinds=self.gap_kinds,
        )


async def claim_due_deliveries(conn, now: datetime, lease_until: datetime, limit: int) -> list[DeliveryJob]:
    """Claim due pending deliveries: their next_attempt_at moves to the end of a lease, so a
    worker that dies mid-send leaves them to be retried, and other workers skip them."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT delivery_id FROM notifier.alert_delivery
            WHERE status = 'pending' AND next_attempt_at <= $1
            ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED
        )
        UPDATE notifier.alert_delivery d SET next_attempt_at = $2
        FROM due, notifier.alert a
        WHERE d.delivery_id = due.delivery_id AND a.alert_id = d.alert_id
        RETURNING d.delivery_id, d.alert_id, d.channel, d.recipients, d.secret_ref, d.attempts,
                  a.care_unit_id, a.unit_name, a.kind, a.gap_count, a.summary, a.digest_date,
                  a.escalation_after_days, a.planned_at, a.gap_kinds
        """,
        now, lease_until, limit,
    )
    return [
        DeliveryJob(
            delivery_id=r["delivery_id"], alert_id=r["alert_id"], channel=r["channel"],
            recipients=tuple(r["recipients"]), secret_ref=r["secret_ref"], attempts=r["attempts"],
            unit_id=r["care_unit_id"], unit_name=r["unit_name"], kind=AlertKind(r["kind"]),
            gap_count=r["gap_count"], summary=summary_from_json(json.loads(r["summary"])),
            digest_date=r["digest_date"], escalation_after_days=r["escalation_after_days"],
            planned_at=r["planned_at"], gap_kinds=gap_kinds_from_json(json.loads(r["gap_kinds"])),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class AttemptRecord:
    job: DeliveryJob
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: str  # delivered | retry | failed
    http_status: int | None = None
    smtp_code: int | None = None
    error_type: str | None = None
    retry_after: str | None = None
    next_attempt_at: datetime | None = None
    reason: str | None = None

    @property
    def smtp_reply_class(self) -> str | None:
        return f"{self.smtp_code // 100}xx" if self.smtp_code is not None else None


async def record_attempt(conn, rec: AttemptRecord, delivered: OutboxEvent | None) -> bool:
    """Log the attempt and move the delivery on, in one transaction with the alert.delivered
    outbox row. False when another worker recorded this attempt already (lease expired)."""
    job = rec.job
    status = {"delivered": "delivered", "retry": "pending", "failed": "failed"}[rec.outcome]
    updated = await conn.fetchval(
        "UPDATE notifier.alert_delivery SET status = $2, attempts = $3, next_attempt_at = $4, "
        "delivered_at = $5, last_error = $6 WHERE delivery_id = $1 AND attempts = $7 AND status = 'pending' "
        "RETURNING true",
        job.delivery_id, status, rec.attempt, rec.next_attempt_at,
        rec.finished_at if rec.outcome == "delivered" else None,
        rec.error_type or (f"http {rec.http_status}" if rec.http_status and rec.outcome != "delivered" else None),
        rec.attempt - 1,
    )
    if not updated:
        return False
    await conn.execute(
        "INSERT INTO notifier.delivery_attempt (delivery_id, alert_id, care_unit_id, channel, attempt, started_at, "
        "finished_at, outcome, http_status, smtp_code, smtp_reply_class, error_type, retry_after, next_attempt_at, "
        "reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        job.delivery_id, job.alert_id, job.unit_id, job.channel, rec.attempt, rec.started_at, rec.finished_at,
        rec.outcome, rec.http_status, rec.smtp_code, rec.smtp_reply_class, rec.error_type, rec.retry_after,
        rec.next_attempt_at, rec.reason,
    )
    if delivered is not None:
        await conn.execute(
            "INSERT INTO notifier.outbox (event_id, event_type, data, event_time) VALUES ($1, $2, $3::jsonb, $4) "
            "ON CONFLICT (event_id) DO NOTHING",
            delivered.event_id, delivered.event_type, json.dumps(delivered.data), delivered.event_time,
        )
    return True
