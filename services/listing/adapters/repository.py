"""PostgreSQL adapter of the listing register: load the slice of state a decision reads, and
write what the decided events mean (evolve → rows), on one connection inside the caller's
transaction.

Reading: :meth:`ListingRepository.lock_persons` takes ``SELECT ... FOR UPDATE`` on the person
rows first (decisions about one person are serialised); only then, in a new statement (a new
snapshot under READ COMMITTED), :meth:`load_patients` reads their records. Reading in the locking
statement would see the pre-lock snapshot.

Writing: :meth:`persist` maps each domain event to rows (the same transitions as
``domain.evolve``: periods are closed, never deleted) and returns the contract events to put in
the outbox, with the ids the rows got (``listing_id``, ``assignment_id``, ``appointment_id``).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from services.listing.adapters import reference
from services.listing.domain import events as ev
from services.listing.domain.model import (
    CareUnit,
    DoctorList,
    PatientRecord,
    PractitionerRole,
)
from services.listing.adapters.event_writers import (
    CLOSE_ASSIGNMENT,
    CLOSE_LISTING,
    WRITERS,
    DecisionContext,
    OutboxEvent,
)
from services.listing.adapters.rows import (
    LOAD_PATIENTS,
    LOAD_UNITS,
    list_from_row,
    record_from_row,
    role_from_row,
    unit_from_row,
)


async def open_pending_listings(pool: Any) -> int:
    """P3: how many minors' listing requests wait for a guardian's consent now (the metrics gauge; the
    partial index of the open requests answers it)."""
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM listing.pending_listing WHERE closed_on IS NULL")


class ListingRepository:
    """All SQL of the command side, on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # ------------------------------------------------------------------ inbox
    async def inbox_outcome(self, message_id: str) -> dict | None | bool:
        """The stored outcome of an already handled message; False when it is new."""
        row = await self.conn.fetchrow("SELECT outcome FROM listing.inbox WHERE message_id = $1", message_id)
        if row is None:
            return False
        return json.loads(row["outcome"]) if row["outcome"] is not None else None

    async def record_inbox(self, message_id: str, message_type: str, outcome: dict | None) -> None:
        await self.conn.execute(
            "INSERT INTO listing.inbox (message_id, message_type, outcome) VALUES ($1, $2, $3::jsonb)",
            message_id, message_type, json.dumps(outcome) if outcome is not None else None,
        )

    async def add_outbox(self, events: Sequence[OutboxEvent], at: datetime) -> None:
        if not events:
            return
        await self.conn.executemany(
            "INSERT INTO listing.outbox (event_type, data, event_time) VALUES ($1, $2::jsonb, $3)",
            [(e.event_type, json.dumps(e.data, ensure_ascii=False), at) for e in events],
        )

    # ------------------------------------------------------------------ loading
    async def lock_persons(self, keys: Iterable[str]) -> list[str]:
        """Lock the person rows (in key order: no deadlocks between multi-person decisions)."""
        rows = await self.conn.fetch(
            "SELECT patient_key FROM listing.person WHERE patient_key = ANY($1::text[]) "
            "ORDER BY patient_key FOR UPDATE",
            sorted(set(keys)),
        )
        return [r["patient_key"] for r in rows]

    async def load_patients(self, keys: Sequence[str], changes_since: date) -> dict[str, PatientRecord]:
        rows = await self.conn.fetch(LOAD_PATIENTS, list(keys), changes_since)
        return {r["patient_key"]: record_from_row(r) for r in rows}

    async def load_units(self, hsa_ids: Iterable[str]) -> dict[str, CareUnit]:
        ids = sorted({u for u in hsa_ids if u})
        if not ids:
            return {}
        rows = await self.conn.fetch(LOAD_UNITS, ids)
        return {r["hsa_id"]: unit_from_row(r) for r in rows}

    async def unit_family(self, hsa_id: str) -> list[str]:
        """The unit's main unit and every filial of it (L7 counts them together); [hsa_id] alone for a
        unit without filials."""
        rows = await self.conn.fetch(
            """WITH main AS (SELECT coalesce((SELECT main_unit_id FROM listing.care_unit WHERE hsa_id = $1), $1) AS id)
               SELECT id AS hsa_id FROM main
               UNION SELECT u.hsa_id FROM listing.care_unit u, main WHERE u.main_unit_id = main.id""", hsa_id)
        return sorted(r["hsa_id"] for r in rows)

    async def lock_unit(self, hsa_id: str) -> None:
        """L7 is a count against a limit: decisions that read it are serialised per unit."""
        await self.conn.execute("SELECT 1 FROM listing.care_unit WHERE hsa_id = $1 FOR UPDATE", hsa_id)

    async def listed_count(self, hsa_id: str) -> int:
        return await self.conn.fetchval(
            "SELECT count(*) FROM listing.listing WHERE care_unit_id = $1 AND end_on IS NULL", hsa_id)

    async def load_list(self, list_id: str, lock_role: bool = False
                        ) -> tuple[DoctorList | None, PractitionerRole | None, int]:
        """The list, its role and its size. ``lock_role``: FOR SHARE on the role, so an assignment and
        the role's end (F8, which locks the role FOR UPDATE first) never cross."""
        if lock_role:  # lock first; the read below is a new statement, so it sees the role after the lock
            await self.conn.execute(
                "SELECT 1 FROM listing.practitioner_role r JOIN listing.doctor_list d ON d.role_id = r.role_id "
                "WHERE d.list_id = $1 FOR SHARE OF r", list_id)
        row = await self.conn.fetchrow(
            """SELECT d.list_id, d.care_unit_id, d.display_name, d.kind, d.role_id,
                      r.role_id AS r_role_id, r.practitioner_id, r.care_unit_id AS r_care_unit_id, r.profession,
                      r.legitimerad, r.employment_type, r.specialty, r.fte, r.individual_capacity, r.start_on, r.end_on,
                      (SELECT count(*) FROM listing.flk_assignment a WHERE a.list_id = d.list_id AND a.end_on IS NULL)
                        AS list_size
               FROM listing.doctor_list d LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
               WHERE d.list_id = $1""",
            list_id,
        )
        if row is None:
            return None, None, 0
        role = None
        if row["r_role_id"] is not None:
            role = role_from_row({**dict(row), "role_id": row["r_role_id"], "care_unit_id": row["r_care_unit_id"]})
        return list_from_row(row), role, row["list_size"]

    async def doctor_list_of(self, practitioner_id: str, care_unit_id: str, on: date) -> str | None:
        """The doctor list bound to the practitioner's role at the unit (active roles first)."""
        return await self.conn.fetchval(
            """SELECT d.list_id FROM listing.doctor_list d JOIN listing.practitioner_role r ON r.role_id = d.role_id
               WHERE r.practitioner_id = $1 AND r.care_unit_id = $2 AND d.kind = 'doctor'
               ORDER BY (r.start_on <= $3 AND (r.end_on IS NULL OR r.end_on > $3)) DESC, r.start_on DESC LIMIT 1""",
            practitioner_id, care_unit_id, on,
        )

    async def roles_of_practitioner(self, practitioner_id: str) -> list[PractitionerRole]:
        """Every role of a practitioner (any unit, any profession)."""
        return [role_from_row(r) for r in await self.conn.fetch(
            "SELECT * FROM listing.practitioner_role WHERE practitioner_id = $1", practitioner_id)]

    async def role_with_lists(self, role_id: str) -> tuple[PractitionerRole | None, list[DoctorList], list[str]]:
        """F8: the role (locked), its lists and the patients with an open assignment on them."""
        row = await self.conn.fetchrow("SELECT * FROM listing.practitioner_role WHERE role_id = $1 FOR UPDATE", role_id)
        if row is None:
            return None, [], []
        lists = [list_from_row(r) for r in await self.conn.fetch(
            "SELECT * FROM listing.doctor_list WHERE role_id = $1", role_id)]
        keys = [r["patient_key"] for r in await self.conn.fetch(
            "SELECT DISTINCT patient_key FROM listing.flk_assignment WHERE list_id = ANY($1::text[]) AND end_on IS NULL "
            "ORDER BY patient_key", [lst.list_id for lst in lists])]
        return role_from_row(row), lists, keys

    async def consents_due(self, today: date, limit: int) -> list[tuple[str, str, date]]:
        """P3: the open pending listing requests whose wait is over (``expires_on <= today``), oldest
        first: (patient key, care unit, requested on)."""
        rows = await self.conn.fetch(
            "SELECT patient_key, care_unit_id, requested_on FROM listing.pending_listing "
            "WHERE closed_on IS NULL AND expires_on <= $1 ORDER BY expires_on, patient_key LIMIT $2", today, limit)
        return [(r["patient_key"], r["care_unit_id"], r["requested_on"]) for r in rows]

    # ------------------------------------------------------------------ reference data (facts)
    async def upsert_role(self, data: dict) -> bool:
        """Roster: a role started or changed (a doctor role gets a list); True when a list was created."""
        return await reference.upsert_role(self.conn, data)

    async def apply_unit_register(self, data: dict, recorded_on: date) -> None:
        """The region's unit register; a period that contradicts a recorded one raises ``ValueError``
        (also when the database's exclusion constraint or period trigger refuses it)."""
        import asyncpg

        try:
            await reference.apply_unit_register(self.conn, data, recorded_on)
        except (asyncpg.ExclusionViolationError, asyncpg.RaiseError):
            raise ValueError("a period overlaps or contradicts a recorded one") from None

    async def add_risk_assessment(self, data: dict) -> None:
        await reference.add_risk_assessment(self.conn, data)

    async def upsert_person(self, patient_key: str, *, population_status: str, home_region: str | None,
                            birth_date: date | None, status_date: date | None,
                            guardian_keys: list[str] | None = None) -> str | None:
        """The person's register facts; the previous population status (None for a new person)."""
        return await reference.upsert_person(
            self.conn, patient_key, population_status=population_status, home_region=home_region,
            birth_date=birth_date, status_date=status_date, guardian_keys=guardian_keys)

    async def mark_protected_identity(self, patient_key: str) -> None:
        """A new person registered with protected identity (nothing to end: no decision)."""
        await self.conn.execute("UPDATE listing.person SET protected_identity = true WHERE patient_key = $1",
                                patient_key)

    async def upsert_residence(self, data: dict) -> None:
        await reference.upsert_residence(self.conn, data)

    async def sabo_resident_on(self, patient_key: str, on: date) -> bool:
        return await reference.sabo_resident_on(self.conn, patient_key, on)

    # ------------------------------------------------------------------ writing decided events
    async def execute(self, sql: str, *args: Any) -> None:
        """A write whose answer is not needed (:class:`ChunkRepository` plans it instead)."""
        await self.conn.execute(sql, *args)

    async def close_listing(self, patient_key: str, care_unit_id: str, ended_on: date, reason: str) -> str | None:
        """End the open listing at the unit; its id, or None when none was open."""
        listing_id = await self.conn.fetchval(CLOSE_LISTING + " RETURNING listing_id",
                                              patient_key, care_unit_id, ended_on, reason)
        return str(listing_id) if listing_id is not None else None

    async def close_assignment(self, patient_key: str, list_id: str, ended_on: date, reason: str) -> str | None:
        """End the open assignment on the list; its id, or None when none was open."""
        assignment_id = await self.conn.fetchval(CLOSE_ASSIGNMENT + " RETURNING assignment_id",
                                                 patient_key, list_id, ended_on, reason)
        return str(assignment_id) if assignment_id is not None else None

    async def close_fast_vardkontakt(self, patient_key: str, care_unit_id: str, practitioner_id: str, ended_on: date,
                                     reason: str) -> str | None:
        """End the open fast vårdkontakt; its appointment id, or None when none was open."""
        appointment_id = await self.conn.fetchval(
            "UPDATE listing.fast_vardkontakt SET end_on = GREATEST($4, start_on), end_reason = $5 "
            "WHERE patient_key = $1 AND care_unit_id = $2 AND practitioner_id = $3 AND end_on IS NULL "
            "RETURNING appointment_id",
            patient_key, care_unit_id, practitioner_id, ended_on, reason,
        )
        return str(appointment_id) if appointment_id is not None else None

    async def persist(self, events: Sequence[ev.Event], ctx: DecisionContext) -> list[OutboxEvent]:
        out: list[OutboxEvent] = []
        for index, event in enumerate(events):
            published = await self.persist_one(event, ctx, index)
            if published is not None:
                out.append(published)
        return out

    async def persist_one(self, event: ev.Event, ctx: DecisionContext, index: int) -> OutboxEvent | None:
        """Write one event of a decision (``index``: its place, for derived ids); a later event of the
        same decision may end what this one started."""
        writer = WRITERS.get(type(event))
        if writer is None:
            raise TypeError(f"no row mapping for {type(event).__name__}")
        return await writer(self, event, ctx, index)
