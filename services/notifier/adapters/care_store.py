"""PostgreSQL persistence of gap detection: inbox, per-patient state, care gaps, outbox.

Every function takes a connection inside the caller's transaction: one consumed message is
one transaction over all four (no dual writes, engineering.md §1.4).
"""
from __future__ import annotations

import json
from datetime import datetime

from services.notifier.adapters.outbound import OutboxEvent
from services.notifier.adapters.state_codec import decode_state, encode_state
from services.notifier.domain.care_gaps import CareGapOpened, CareGapResolved, GapEvent, PatientCareState


async def claim_inbox(conn, event_id: str, event_type: str, now: datetime) -> bool:
    """Record a consumed event id; False when it was seen before (a redelivery)."""
    inserted = await conn.fetchval(
        "INSERT INTO notifier.inbox (event_id, event_type, received_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event_id, event_type, now,
    )
    return bool(inserted)


async def load_state(conn, patient_key: str, *, skip_locked: bool = False) -> tuple[PatientCareState, datetime | None] | None:
    """The patient's state and stored next_wakeup, row-locked for this transaction."""
    row = await conn.fetchrow(
        "SELECT state, next_wakeup FROM notifier.patient_care_state WHERE patient_key = $1 FOR UPDATE"
        + (" SKIP LOCKED" if skip_locked else ""),
        patient_key,
    )
    if row is None:
        return None
    return decode_state(json.loads(row["state"])), row["next_wakeup"]


async def save_state(conn, state: PatientCareState, next_wakeup: datetime | None, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO notifier.patient_care_state (patient_key, state, next_wakeup, updated_at) "
        "VALUES ($1, $2::jsonb, $3, $4) "
        "ON CONFLICT (patient_key) DO UPDATE SET state = EXCLUDED.state, next_wakeup = EXCLUDED.next_wakeup, "
        "updated_at = EXCLUDED.updated_at, version = notifier.patient_care_state.version + 1",
        state.patient_key, json.dumps(encode_state(state), separators=(",", ":")), next_wakeup, now,
    )


async def record_gap_events(conn, events: list[GapEvent]) -> None:
    """Open/resolve rows in notifier.care_gap (the partial unique index allows one open gap
    per patient and unit; a violation is a bug and fails the transaction)."""
    for event in events:
        if isinstance(event, CareGapResolved):
            await conn.execute(
                "UPDATE notifier.care_gap SET resolved_at = $2, resolution = $3 "
                "WHERE gap_id = $1 AND resolved_at IS NULL",
                event.gap_id, event.resolved_at, event.resolution.value,
            )
        elif isinstance(event, CareGapOpened):
            await conn.execute(
                "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gap_id) DO NOTHING",
                event.gap_id, event.patient_key, event.unit_id, event.cause.value, event.rub, event.sabo,
                event.opened_at,
            )


async def add_outbox(conn, events: list[OutboxEvent]) -> None:
    if not events:
        return
    await conn.executemany(
        "INSERT INTO notifier.outbox (event_id, event_type, data, event_time) VALUES ($1, $2, $3::jsonb, $4) "
        "ON CONFLICT (event_id) DO NOTHING",
        [(e.event_id, e.event_type, json.dumps(e.data, ensure_ascii=False), e.event_time) for e in events],
    )


async def due_patients(conn, now: datetime, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT patient_key FROM notifier.patient_care_state WHERE next_wakeup <= $1 "
        "ORDER BY next_wakeup LIMIT $2",
        now, limit,
    )
    return [r["patient_key"] for r in rows]
