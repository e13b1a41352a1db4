"""PostgreSQL persistence of gap detection: inbox, per-patient state, care gaps, outbox.

Every function takes a connection inside the caller's transaction: one consumed chunk (or, on
the fallback path, one message) is one transaction over all four (no dual writes,
engineering.md §1.4). The ``*_many`` functions serve a whole chunk in one statement each.
"""
from __future__ import annotations

from datetime import datetime

import orjson

from services.notifier.adapters.outbound import OutboxEvent
from services.notifier.adapters.state_codec import decode_state, encode_state
from services.notifier.domain.care_gaps import CareGapOpened, CareGapResolved, GapEvent, PatientCareState


def _state_json(state: PatientCareState) -> str:
    return orjson.dumps(encode_state(state)).decode()


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
    return decode_state(orjson.loads(row["state"])), row["next_wakeup"]


async def save_state(conn, state: PatientCareState, next_wakeup: datetime | None, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO notifier.patient_care_state (patient_key, state, next_wakeup, updated_at) "
        "VALUES ($1, $2::jsonb, $3, $4) "
        "ON CONFLICT (patient_key) DO UPDATE SET state = EXCLUDED.state, next_wakeup = EXCLUDED.next_wakeup, "
        "updated_at = EXCLUDED.updated_at, version = notifier.patient_care_state.version + 1",
        state.patient_key, _state_json(state), next_wakeup, now,
    )


async def record_gap_events(conn, events: list[GapEvent]) -> None:
    """Open/resolve rows in notifier.care_gap (the partial unique index allows one open gap
    per patient, unit and kind; a violation is a bug and fails the transaction)."""
    for event in events:
        if isinstance(event, CareGapResolved):
            await conn.execute(
                "UPDATE notifier.care_gap SET resolved_at = $2, resolution = $3 "
                "WHERE gap_id = $1 AND resolved_at IS NULL",
                event.gap_id, event.resolved_at, event.resolution.value,
            )
        elif isinstance(event, CareGapOpened):
            await conn.execute(
                "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at, kind) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (gap_id) DO NOTHING",
                event.gap_id, event.patient_key, event.unit_id, event.cause.value, event.rub, event.sabo,
                event.opened_at, event.kind.value,
            )


async def add_outbox(conn, events: list[OutboxEvent]) -> None:
    if not events:
        return
    await conn.executemany(
        "INSERT INTO notifier.outbox (event_id, event_type, data, event_time) VALUES ($1, $2, $3::jsonb, $4) "
        "ON CONFLICT (event_id) DO NOTHING",
        [(e.event_id, e.event_type, orjson.dumps(e.data).decode(), e.event_time) for e in events],
    )


async def due_patients(conn, now: datetime, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT patient_key FROM notifier.patient_care_state WHERE next_wakeup <= $1 "
        "ORDER BY next_wakeup LIMIT $2",
        now, limit,
    )
    return [r["patient_key"] for r in rows]


# ---- batched: one statement per kind of row for a whole chunk of consumed events ----------------


async def claim_inbox_many(conn, claims: list[tuple[str, str]], now: datetime) -> set[str]:
    """Record consumed (event_id, event_type) pairs in one statement; the ids not seen before."""
    if not claims:
        return set()
    rows = await conn.fetch(
        "INSERT INTO notifier.inbox (event_id, event_type, received_at) "
        "SELECT i, t, $3 FROM unnest($1::text[], $2::text[]) AS c(i, t) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        [c[0] for c in claims], [c[1] for c in claims], now,
    )
    return {r["event_id"] for r in rows}


async def load_states(conn, patient_keys: list[str]) -> dict[str, tuple[PatientCareState, datetime | None]]:
    """The stored states of these patients, row-locked in patient-key order (no deadlock between
    two batches, or with the ticker's one-row transactions)."""
    if not patient_keys:
        return {}
    rows = await conn.fetch(
        "SELECT patient_key, state, next_wakeup FROM notifier.patient_care_state "
        "WHERE patient_key = ANY($1::text[]) ORDER BY patient_key FOR UPDATE",
        sorted(set(patient_keys)),
    )
    return {r["patient_key"]: (decode_state(orjson.loads(r["state"])), r["next_wakeup"]) for r in rows}


async def save_states(conn, states: list[tuple[PatientCareState, datetime | None]], now: datetime) -> None:
    """Each patient's state, as `save_state` writes it, in one statement (a batch's patients are distinct:
    one upsert over ``unnest`` costs PostgreSQL one execution, not one per patient as ``executemany``
    did — 120 000 executions in a replay of 30 000 people). The patients must be distinct (PostgreSQL
    refuses an upsert that meets a row twice)."""
    if not states:
        return
    await conn.execute(
        "INSERT INTO notifier.patient_care_state (patient_key, state, next_wakeup, updated_at) "
        "SELECT k, s::jsonb, w, $4 FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS c(k, s, w) "
        "ON CONFLICT (patient_key) DO UPDATE SET state = EXCLUDED.state, next_wakeup = EXCLUDED.next_wakeup, "
        "updated_at = EXCLUDED.updated_at, version = notifier.patient_care_state.version + 1",
        [s.patient_key for s, _ in states], [_state_json(s) for s, _ in states], [wake for _, wake in states], now,
    )


async def record_gap_events_many(conn, events: list[GapEvent]) -> None:
    """The same rows as :func:`record_gap_events` over ``events`` in order, in two statements:
    first the resolutions of gaps opened before this chunk, then the gaps opened in it (with their
    resolution when it came in the same chunk). Resolving first keeps the one-open-gap index."""
    opened: dict = {}  # gap_id -> [event, resolved_at, resolution]
    resolved_earlier: dict = {}
    for event in events:
        if isinstance(event, CareGapOpened):
            opened.setdefault(event.gap_id, [event, None, None])
        elif isinstance(event, CareGapResolved):
            if event.gap_id in opened:
                row = opened[event.gap_id]
                if row[1] is None:
                    row[1], row[2] = event.resolved_at, event.resolution.value
            else:
                resolved_earlier.setdefault(event.gap_id, (event.resolved_at, event.resolution.value))
    if resolved_earlier:
        await conn.executemany(
            "UPDATE notifier.care_gap SET resolved_at = $2, resolution = $3 "
            "WHERE gap_id = $1 AND resolved_at IS NULL",
            [(gap_id, at, resolution) for gap_id, (at, resolution) in resolved_earlier.items()],
        )
    if opened:
        await conn.executemany(
            "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at, "
            "resolved_at, resolution, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            "ON CONFLICT (gap_id) DO NOTHING",
            [(e.gap_id, e.patient_key, e.unit_id, e.cause.value, e.rub, e.sabo, e.opened_at, at, resolution,
              e.kind.value)
             for e, at, resolution in opened.values()],
        )


class CareStore:
    """The functions above as one port on one connection (inside the caller's transaction): what
    gap detection reads and writes. tests/support/notifier_fakes.py has the in-memory fake."""

    def __init__(self, conn) -> None:
        self.conn = conn

    async def claim_inbox(self, event_id: str, event_type: str, now: datetime) -> bool:
        return await claim_inbox(self.conn, event_id, event_type, now)

    async def claim_inbox_many(self, claims: list[tuple[str, str]], now: datetime) -> set[str]:
        return await claim_inbox_many(self.conn, claims, now)

    async def load_state(self, patient_key: str, *, skip_locked: bool = False
                         ) -> tuple[PatientCareState, datetime | None] | None:
        return await load_state(self.conn, patient_key, skip_locked=skip_locked)

    async def load_states(self, patient_keys: list[str]) -> dict[str, tuple[PatientCareState, datetime | None]]:
        return await load_states(self.conn, patient_keys)

    async def save_state(self, state: PatientCareState, next_wakeup: datetime | None, now: datetime) -> None:
        await save_state(self.conn, state, next_wakeup, now)

    async def save_states(self, states: list[tuple[PatientCareState, datetime | None]], now: datetime) -> None:
        await save_states(self.conn, states, now)

    async def record_gap_events(self, events: list[GapEvent]) -> None:
        await record_gap_events(self.conn, events)

    async def record_gap_events_many(self, events: list[GapEvent]) -> None:
        await record_gap_events_many(self.conn, events)

    async def add_outbox(self, events: list[OutboxEvent]) -> None:
        await add_outbox(self.conn, events)

    async def due_patients(self, now: datetime, limit: int) -> list[str]:
        return await due_patients(self.conn, now, limit)


class CareUnitOfWork:
    """``async with CareUnitOfWork(pool) as uow:`` one transaction; ``uow.store`` on its connection.
    Commits when the block ends normally, rolls back otherwise."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.store: CareStore

    async def __aenter__(self) -> CareUnitOfWork:
        self._acquired = self.pool.acquire()
        conn = await self._acquired.__aenter__()
        self._tx = conn.transaction()
        try:
            await self._tx.__aenter__()
        except BaseException as exc:
            await self._acquired.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self.store = CareStore(conn)
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            await self._tx.__aexit__(exc_type, exc, tb)
        finally:
            await self._acquired.__aexit__(exc_type, exc, tb)
