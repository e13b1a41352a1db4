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
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flk.events.envelope import derived_id
from services.listing.domain import events as ev
from services.listing.domain.model import (
    Channel,
    CareUnit,
    ConsentOutcome,
    DoctorList,
    EmploymentType,
    ExemptionReason,
    FastVardkontakt,
    FastVardkontaktEndReason,
    FastVardkontaktRequest,
    FlkAssignment,
    FlkDecline,
    FlkEndReason,
    Initiator,
    Listing,
    ListingChange,
    ListingEndReason,
    ListingLimit,
    ListingOrigin,
    ListKind,
    PatientRecord,
    PendingListing,
    Period,
    Person,
    PopulationStatus,
    PractitionerRole,
)

LOCUM_TYPES = frozenset({EmploymentType.HYR, EmploymentType.KONSULT})
LAKARE = "läkare"


def _d(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _opt(enum: type, value: str | None) -> Any:
    return enum(value) if value else None


def _json_list(value: Any) -> list[dict]:
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------- row -> domain


def person_from_row(row: Any) -> Person:
    return Person(
        patient_key=row["patient_key"],
        population_status=PopulationStatus(row["population_status"]),
        home_region=row["home_region"],
        birth_date=row["birth_date"],
        protected_identity=row["protected_identity"],
        sabo_resident=row["sabo_resident"],
        guardian_keys=frozenset(row["guardian_keys"]) if row["guardian_keys"] is not None else None,
    )


def role_from_row(row: Any) -> PractitionerRole:
    return PractitionerRole(
        role_id=row["role_id"],
        practitioner_id=row["practitioner_id"],
        care_unit_id=row["care_unit_id"],
        profession=row["profession"],
        legitimerad=row["legitimerad"],
        employment_type=EmploymentType(row["employment_type"]),
        specialty=row["specialty"],
        fte=Decimal(row["fte"]),
        period=Period(row["start_on"], row["end_on"]),
        individual_capacity=row["individual_capacity"],
    )


def list_from_row(row: Any) -> DoctorList:
    return DoctorList(
        list_id=row["list_id"],
        care_unit_id=row["care_unit_id"],
        display_name=row["display_name"],
        kind=ListKind(row["kind"]),
        role_id=row["role_id"],
    )


def record_from_row(row: Any) -> PatientRecord:
    listings = tuple(
        Listing(
            care_unit_id=x["care_unit_id"],
            registered_on=_d(x["registered_on"]),
            period=Period(_d(x["start_on"]), _d(x["end_on"])),
            origin=ListingOrigin(x["origin"]),
            channel=Channel(x["channel"]),
            initiated_by=Initiator(x["initiated_by"]),
            exemption_reason=_opt(ExemptionReason, x["exemption_reason"]),
            end_reason=_opt(ListingEndReason, x["end_reason"]),
        )
        for x in _json_list(row["listings"])
    )
    changes = tuple(
        ListingChange(
            on=_d(x["changed_on"]),
            from_care_unit_id=x["from_care_unit_id"],
            to_care_unit_id=x["to_care_unit_id"],
            initiated_by=Initiator(x["initiated_by"]),
            origin=ListingOrigin(x["origin"]),
            exemption_reason=_opt(ExemptionReason, x["exemption_reason"]),
        )
        for x in _json_list(row["changes"])
    )
    assignments = tuple(
        FlkAssignment(
            list_id=x["list_id"],
            care_unit_id=x["care_unit_id"],
            list_kind=ListKind(x["list_kind"]),
            practitioner_id=x["practitioner_id"],
            coordinating=x["coordinating"],
            period=Period(_d(x["start_on"]), _d(x["end_on"])),
            end_reason=_opt(FlkEndReason, x["end_reason"]),
        )
        for x in _json_list(row["assignments"])
    )
    declines = tuple(
        FlkDecline(x["care_unit_id"], Period(_d(x["start_on"]), _d(x["end_on"])))
        for x in _json_list(row["declines"])
    )
    vardkontakter = tuple(
        FastVardkontakt(
            practitioner_id=x["practitioner_id"],
            profession=x["profession"],
            care_unit_id=x["care_unit_id"],
            appointed_by_hsa_id=x["appointed_by_hsa_id"],
            period=Period(_d(x["start_on"]), _d(x["end_on"])),
            end_reason=_opt(FastVardkontaktEndReason, x["end_reason"]),
        )
        for x in _json_list(row["vardkontakter"])
    )
    requests = tuple(
        FastVardkontaktRequest(x["care_unit_id"], _d(x["requested_on"]), _d(x["fulfilled_on"]))
        for x in _json_list(row["requests"])
    )
    pending = tuple(
        PendingListing(
            care_unit_id=x["care_unit_id"],
            requested_on=_d(x["requested_on"]),
            expires_on=_d(x["expires_on"]),
            consented_guardian_keys=frozenset(x["consented_guardian_keys"]),
            awaiting_guardian_keys=frozenset(x["awaiting_guardian_keys"]),
            origin=ListingOrigin(x["origin"]),
            channel=Channel(x["channel"]),
            initiated_by=Initiator(x["initiated_by"]),
            exemption_reason=_opt(ExemptionReason, x["exemption_reason"]),
            residency_exception=x["residency_exception"],
            closed_on=_d(x["closed_on"]),
            outcome=_opt(ConsentOutcome, x["outcome"]),
        )
        for x in _json_list(row["pending"])
    )
    return PatientRecord(
        person=person_from_row(row),
        pending_listings=pending,
        listings=listings,
        changes=changes,
        assignments=assignments,
        declines=declines,
        fast_vardkontakter=vardkontakter,
        fast_vardkontakt_requests=requests,
    )


# The decision slice of each person, in one round trip: the person (with the register's guardians,
# P3), the open listing and the last one (L1, L5: a change or a first listing), changes since the L5
# window start, the open assignments, declines, fast vårdkontakter and requests, and the open pending
# listing request (P3). Closed history is not needed.
LOAD_PATIENTS = """
SELECT p.patient_key, p.population_status, p.home_region, p.birth_date, p.protected_identity, p.sabo_resident,
  p.guardian_keys,
  (SELECT jsonb_agg(to_jsonb(l) ORDER BY l.registered_on, l.created_at) FROM (
       SELECT listing_id, care_unit_id, registered_on, start_on, end_on, origin, channel, initiated_by,
              exemption_reason, end_reason, created_at
       FROM listing.listing x
       WHERE x.patient_key = p.patient_key
         AND (x.end_on IS NULL OR x.listing_id = (
              SELECT y.listing_id FROM listing.listing y WHERE y.patient_key = p.patient_key
              ORDER BY y.registered_on DESC, y.created_at DESC LIMIT 1))) l) AS listings,
  (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.changed_on, c.id) FROM (
       SELECT id, changed_on, from_care_unit_id, to_care_unit_id, initiated_by, origin, exemption_reason
       FROM listing.listing_change x WHERE x.patient_key = p.patient_key AND x.changed_on >= $2) c) AS changes,
  (SELECT jsonb_agg(to_jsonb(a) ORDER BY a.start_on, a.created_at) FROM (
       SELECT assignment_id, list_id, care_unit_id, list_kind, practitioner_id, coordinating, start_on, end_on,
              end_reason, created_at
       FROM listing.flk_assignment x WHERE x.patient_key = p.patient_key AND x.end_on IS NULL) a) AS assignments,
  (SELECT jsonb_agg(to_jsonb(d) ORDER BY d.start_on, d.id) FROM (
       SELECT id, care_unit_id, start_on, end_on FROM listing.flk_decline x
       WHERE x.patient_key = p.patient_key AND x.end_on IS NULL) d) AS declines,
  (SELECT jsonb_agg(to_jsonb(v) ORDER BY v.start_on, v.created_at) FROM (
       SELECT practitioner_id, profession, care_unit_id, appointed_by_hsa_id, start_on, end_on, end_reason, created_at
       FROM listing.fast_vardkontakt x WHERE x.patient_key = p.patient_key AND x.end_on IS NULL) v) AS vardkontakter,
  (SELECT jsonb_agg(to_jsonb(q) ORDER BY q.requested_on, q.id) FROM (
       SELECT id, care_unit_id, requested_on, fulfilled_on FROM listing.fast_vardkontakt_request x
       WHERE x.patient_key = p.patient_key AND x.fulfilled_on IS NULL) q) AS requests,
  (SELECT jsonb_agg(to_jsonb(w)) FROM (
       SELECT care_unit_id, requested_on, expires_on, consented_guardian_keys, awaiting_guardian_keys, origin, channel,
              initiated_by, exemption_reason, residency_exception, closed_on, outcome
       FROM listing.pending_listing x WHERE x.patient_key = p.patient_key AND x.closed_on IS NULL) w) AS pending
FROM listing.person p
WHERE p.patient_key = ANY($1::text[])
"""

LOAD_UNITS = """
SELECT u.hsa_id, u.name, u.region_code, u.verksamhetschef_hsa_id, u.main_unit_id,
  (SELECT jsonb_agg(jsonb_build_array(c.start_on, c.end_on) ORDER BY c.start_on)
     FROM listing.unit_contract c WHERE c.care_unit_id = u.hsa_id) AS contracts,
  (SELECT jsonb_agg(jsonb_build_array(l.max_listed, l.start_on, l.end_on, l.exempt_groups) ORDER BY l.start_on)
     FROM listing.listing_limit l WHERE l.care_unit_id = u.hsa_id) AS limits
FROM listing.care_unit u WHERE u.hsa_id = ANY($1::text[])
"""


def unit_from_row(row: Any) -> CareUnit:
    contracts = tuple(Period(_d(s), _d(e)) for s, e in _json_list(row["contracts"]))
    limits = tuple(
        ListingLimit(max_listed=m, period=Period(_d(s), _d(e)), exempt_groups=frozenset(g or ()))
        for m, s, e, g in _json_list(row["limits"])
    )
    return CareUnit(
        hsa_id=row["hsa_id"],
        name=row["name"],
        region=row["region_code"],
        contracts=contracts,
        listing_limits=limits,
        verksamhetschef_hsa_id=row["verksamhetschef_hsa_id"],
        main_unit_id=row["main_unit_id"],
    )


CLOSE_LISTING = """UPDATE listing.listing SET end_on = GREATEST($3, start_on), end_reason = $4
WHERE patient_key = $1 AND care_unit_id = $2 AND end_on IS NULL"""
CLOSE_ASSIGNMENT = """UPDATE listing.flk_assignment SET end_on = GREATEST($3, start_on), end_reason = $4
WHERE patient_key = $1 AND list_id = $2 AND end_on IS NULL"""
CLOSE_DECLINES = """UPDATE listing.flk_decline SET end_on = GREATEST($3, start_on)
WHERE patient_key = $1 AND care_unit_id = $2 AND end_on IS NULL"""
INSERT_LISTING = """INSERT INTO listing.listing (listing_id, patient_key, care_unit_id, registered_on, start_on, origin,
    channel, initiated_by, exemption_reason, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"""
INSERT_ASSIGNMENT = """INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id, list_kind,
    practitioner_id, coordinating, start_on, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"""


@dataclass(frozen=True)
class OutboxEvent:
    """A contract event to publish: its type and data (validated by the relay's make_record)."""

    event_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class DecisionContext:
    """Who asked: the message the events answer (ids and the contract's command type)."""

    message_id: str
    command_type: str
    decided_at: datetime
    care_unit_id: str | None = None  # the unit the command named (for rejections)

    @property
    def command_uuid(self) -> str:
        """The command id as the contracts want it (a uuid); a non-uuid message id is mapped by uuid5."""
        try:
            return str(uuid.UUID(self.message_id))
        except ValueError:
            return derived_id("listing.message", self.message_id)


async def open_pending_listings(pool: Any) -> int:
    """P3: how many minors' listing requests wait for a guardian's consent now (the metrics gauge; the
    partial index of the open requests answers it)."""
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM listing.pending_listing WHERE closed_on IS NULL")


def iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


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
            writer = _WRITERS.get(type(event))
            if writer is None:
                raise TypeError(f"no row mapping for {type(event).__name__}")
            published = await writer(self, event, ctx, index)
            if published is not None:
                out.append(published)
        return out


# --------------------------------------------------------------------------- event -> rows


async def _listing_started(repo: ListingRepository, e: ev.ListingStarted, ctx: DecisionContext, i: int):
    listing_id = derived_id("listing.listing", ctx.message_id, i, e.patient_key, e.care_unit_id)
    await repo.execute(
        INSERT_LISTING,
        listing_id, e.patient_key, e.care_unit_id, e.started_on, e.responsibility_from, e.origin.value,
        e.channel.value, e.initiated_by.value, e.exemption_reason.value if e.exemption_reason else None, ctx.message_id,
    )
    if e.previous_care_unit_id is not None:
        await repo.execute(
            """INSERT INTO listing.listing_change (patient_key, changed_on, from_care_unit_id, to_care_unit_id,
                   initiated_by, origin, exemption_reason, counts_toward_switch_limit, listing_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            e.patient_key, e.started_on, e.previous_care_unit_id, e.care_unit_id, e.initiated_by.value,
            e.origin.value, e.exemption_reason.value if e.exemption_reason else None, e.counts_toward_switch_limit,
            listing_id,
        )
    return OutboxEvent("listing.started.v1", {
        "listing_id": listing_id,
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "started_on": iso(e.started_on),
        "responsibility_from": iso(e.responsibility_from),
        "origin": e.origin.value,
        "channel": e.channel.value,
        "initiated_by": e.initiated_by.value,
        "previous_care_unit_id": e.previous_care_unit_id,
        "command_id": ctx.command_uuid,
    })


async def _listing_ended(repo: ListingRepository, e: ev.ListingEnded, ctx: DecisionContext, i: int):
    listing_id = await repo.close_listing(e.patient_key, e.care_unit_id, e.ended_on, e.reason.value)
    # F7: a decline at the unit ends with the listing (as evolve does)
    await repo.execute(
        CLOSE_DECLINES,
        e.patient_key, e.care_unit_id, e.ended_on,
    )
    if listing_id is None:
        return None
    return OutboxEvent("listing.ended.v1", {
        "listing_id": str(listing_id),
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "ended_on": iso(e.ended_on),
        "reason": e.reason.value,
        "command_id": ctx.command_uuid,
    })


UPSERT_PENDING = """INSERT INTO listing.pending_listing (pending_id, patient_key, care_unit_id, requested_on, expires_on,
    consented_guardian_keys, awaiting_guardian_keys, origin, channel, initiated_by, exemption_reason,
    residency_exception, command_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (patient_key) WHERE closed_on IS NULL DO UPDATE
    SET consented_guardian_keys = EXCLUDED.consented_guardian_keys,
        awaiting_guardian_keys = EXCLUDED.awaiting_guardian_keys"""
CLOSE_PENDING = """UPDATE listing.pending_listing SET closed_on = GREATEST($2, requested_on), outcome = $3
WHERE patient_key = $1 AND closed_on IS NULL"""


async def _awaiting_consent(repo: ListingRepository, e: ev.ListingAwaitingConsent, ctx: DecisionContext, i: int):
    """P3: open the pending request (announced again: the open one's consent sets change)."""
    consented, awaiting = sorted(e.consented_guardian_keys), sorted(e.awaiting_guardian_keys)
    await repo.execute(
        UPSERT_PENDING,
        derived_id("listing.pending_listing", ctx.message_id, i, e.patient_key), e.patient_key, e.care_unit_id,
        e.requested_on, e.expires_on, consented, awaiting, e.origin.value, e.channel.value, e.initiated_by.value,
        e.exemption_reason.value if e.exemption_reason else None, e.residency_exception, ctx.message_id,
    )
    return OutboxEvent("listing.awaiting_consent.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "requested_on": iso(e.requested_on),
        "expires_on": iso(e.expires_on),
        "consented_guardian_keys": consented,
        "awaiting_guardian_keys": awaiting,
        "command_id": ctx.command_uuid,
    })


async def _consent_closed(repo: ListingRepository, e: ev.ListingConsentClosed, ctx: DecisionContext, i: int):
    await repo.execute(CLOSE_PENDING, e.patient_key, e.closed_on, e.outcome.value)
    return OutboxEvent("listing.consent_closed.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "requested_on": iso(e.requested_on),
        "closed_on": iso(max(e.closed_on, e.requested_on)),
        "outcome": e.outcome.value,
        "command_id": ctx.command_uuid,
    })


async def _flk_assigned(repo: ListingRepository, e: ev.FastLakarkontaktAssigned, ctx: DecisionContext, i: int):
    assignment_id = derived_id("listing.flk_assignment", ctx.message_id, i, e.patient_key, e.list_id)
    await repo.execute(
        INSERT_ASSIGNMENT,
        assignment_id, e.patient_key, e.list_id, e.care_unit_id, e.list_kind.value, e.practitioner_id,
        e.coordinating, e.assigned_on, ctx.message_id,
    )
    await repo.execute(
        CLOSE_DECLINES,
        e.patient_key, e.care_unit_id, e.assigned_on,
    )
    return OutboxEvent("fast_lakarkontakt.assigned.v1", {
        "assignment_id": assignment_id,
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "list_kind": e.list_kind.value,
        "practitioner_id": e.practitioner_id,
        "coordinating": e.coordinating,
        "assigned_on": iso(e.assigned_on),
        "command_id": ctx.command_uuid,
    })


async def _flk_ended(repo: ListingRepository, e: ev.FastLakarkontaktEnded, ctx: DecisionContext, i: int):
    assignment_id = await repo.close_assignment(e.patient_key, e.list_id, e.ended_on, e.reason.value)
    if assignment_id is None:
        return None
    return OutboxEvent("fast_lakarkontakt.ended.v1", {
        "assignment_id": str(assignment_id),
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "list_kind": e.list_kind.value,
        "practitioner_id": e.practitioner_id,
        "coordinating": e.coordinating,
        "ended_on": iso(e.ended_on),
        "reason": e.reason.value,
        "command_id": ctx.command_uuid,
    })


async def _coordinating_changed(repo: ListingRepository, e: ev.CoordinatingFastLakarkontaktChanged,
                                ctx: DecisionContext, i: int):
    # in-place flag change: the history trigger keeps the old row. The event carries what it
    # announces, so nothing is read back: in a chunk the assignment it names may still be a planned
    # row (ChunkRepository), and a read would miss it and lose the event.
    await repo.execute(
        "UPDATE listing.flk_assignment SET coordinating = (list_id = $2) "
        "WHERE patient_key = $1 AND end_on IS NULL AND coordinating IS DISTINCT FROM (list_id = $2)",
        e.patient_key, e.list_id,
    )
    return OutboxEvent("fast_lakarkontakt.coordinating_changed.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "practitioner_id": e.practitioner_id,
        "previous_list_id": e.previous_list_id,
        "changed_on": iso(e.effective_date),
        "command_id": ctx.command_uuid,
    })


async def _flk_declined(repo: ListingRepository, e: ev.FastLakarkontaktDeclined, ctx: DecisionContext, i: int):
    await repo.execute(
        "INSERT INTO listing.flk_decline (patient_key, care_unit_id, start_on, command_id) VALUES ($1, $2, $3, $4)",
        e.patient_key, e.care_unit_id, e.declined_on, ctx.message_id,
    )
    return OutboxEvent("fast_lakarkontakt.declined.v1", {
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "declined_on": iso(e.declined_on),
        "suppresses_alerts": e.suppresses_alerts,
        "command_id": ctx.command_uuid,
    })


async def _capacity_warning(repo: ListingRepository, e: ev.CapacityWarning, ctx: DecisionContext, i: int):
    return OutboxEvent("capacity.warning.v1", {
        "care_unit_id": e.care_unit_id,
        "list_id": e.list_id,
        "practitioner_id": e.practitioner_id,
        "list_size": e.list_size,
        "capacity": e.capacity,
        "rule_id": "F6",
        "observed_at": rfc3339(ctx.decided_at),
    })


async def _role_ended(repo: ListingRepository, e: ev.PractitionerRoleEnded, ctx: DecisionContext, i: int):
    await repo.execute(
        "UPDATE listing.practitioner_role SET end_on = GREATEST($2, start_on), updated_at = now() "
        "WHERE role_id = $1 AND (end_on IS NULL OR end_on > $2)",
        e.role_id, e.ended_on,
    )
    return None


async def _vk_requested(repo: ListingRepository, e: ev.FastVardkontaktRequested, ctx: DecisionContext, i: int):
    await repo.execute(
        "INSERT INTO listing.fast_vardkontakt_request (patient_key, care_unit_id, requested_on) VALUES ($1, $2, $3)",
        e.patient_key, e.care_unit_id, e.effective_date,
    )
    return None


async def _vk_appointed(repo: ListingRepository, e: ev.FastVardkontaktAppointed, ctx: DecisionContext, i: int):
    appointment_id = derived_id("listing.fast_vardkontakt", ctx.message_id, i, e.patient_key, e.practitioner_id)
    await repo.execute(
        """INSERT INTO listing.fast_vardkontakt (appointment_id, patient_key, care_unit_id, practitioner_id, profession,
                                                 appointed_by_hsa_id, start_on, command_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        appointment_id, e.patient_key, e.care_unit_id, e.practitioner_id, e.profession, e.appointed_by_hsa_id,
        e.appointed_on, ctx.message_id,
    )
    await repo.execute(
        "UPDATE listing.fast_vardkontakt_request SET fulfilled_on = $3 "
        "WHERE patient_key = $1 AND care_unit_id = $2 AND fulfilled_on IS NULL",
        e.patient_key, e.care_unit_id, e.appointed_on,
    )
    return OutboxEvent("fast_vardkontakt.appointed.v1", {
        "appointment_id": appointment_id,
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "practitioner_id": e.practitioner_id,
        "profession": e.profession,
        "appointed_on": iso(e.appointed_on),
        "command_id": ctx.command_uuid,
    })


async def _vk_ended(repo: ListingRepository, e: ev.FastVardkontaktEnded, ctx: DecisionContext, i: int):
    appointment_id = await repo.close_fast_vardkontakt(e.patient_key, e.care_unit_id, e.practitioner_id,
                                                       e.ended_on, e.reason.value)
    if appointment_id is None:
        return None
    return OutboxEvent("fast_vardkontakt.ended.v1", {
        "appointment_id": str(appointment_id),
        "patient_key": e.patient_key,
        "care_unit_id": e.care_unit_id,
        "practitioner_id": e.practitioner_id,
        "ended_on": iso(e.ended_on),
        "reason": e.reason.value,
        "command_id": ctx.command_uuid,
    })


def _person_status(status: PopulationStatus):
    async def write(repo: ListingRepository, e: Any, ctx: DecisionContext, i: int):
        await repo.execute(
            "UPDATE listing.person SET population_status = $2, status_date = $3, updated_at = now() "
            "WHERE patient_key = $1",
            e.patient_key, status.value, e.effective_date,
        )
        return None

    return write


async def _protected(repo: ListingRepository, e: ev.ProtectedIdentityRecorded, ctx: DecisionContext, i: int):
    await repo.execute(
        "UPDATE listing.person SET protected_identity = $2, updated_at = now() WHERE patient_key = $1",
        e.patient_key, e.protected,
    )
    return None


async def _sabo(repo: ListingRepository, e: ev.SaboResidenceRecorded, ctx: DecisionContext, i: int):
    await repo.execute(
        "UPDATE listing.person SET sabo_resident = $2, updated_at = now() WHERE patient_key = $1",
        e.patient_key, e.resident,
    )
    return None


def _rejected_data(e: Any, ctx: DecisionContext, patient_key: str, care_unit_id: str | None) -> OutboxEvent:
    return OutboxEvent("listing.rejected.v1", {
        "command_id": ctx.command_uuid,
        "command_type": ctx.command_type[:80],
        "patient_key": patient_key,
        "care_unit_id": care_unit_id,
        "reason_code": e.reason.value,
        "rule_id": e.reason.rule_id.value,
        "message_sv": e.reason.message_sv,
        "message_en": e.reason.message_en,
        "rejected_at": rfc3339(ctx.decided_at),
    })


async def _listing_rejected(repo: ListingRepository, e: ev.ListingRejected, ctx: DecisionContext, i: int):
    return _rejected_data(e, ctx, e.patient_key, e.care_unit_id)


async def _assignment_rejected(repo: ListingRepository, e: ev.AssignmentRejected, ctx: DecisionContext, i: int):
    return _rejected_data(e, ctx, e.patient_key, ctx.care_unit_id)


async def _record_rejected(repo: ListingRepository, e: ev.RecordRejected, ctx: DecisionContext, i: int):
    from flk.security.pseudonym import is_patient_key

    if is_patient_key(e.subject_id):
        return _rejected_data(e, ctx, e.subject_id, None)
    return None  # e.g. an unknown role (F8): not a patient event; counted in metrics, logged


_WRITERS = {
    ev.ListingStarted: _listing_started,
    ev.ListingEnded: _listing_ended,
    ev.ListingAwaitingConsent: _awaiting_consent,
    ev.ListingConsentClosed: _consent_closed,
    ev.FastLakarkontaktAssigned: _flk_assigned,
    ev.FastLakarkontaktEnded: _flk_ended,
    ev.CoordinatingFastLakarkontaktChanged: _coordinating_changed,
    ev.FastLakarkontaktDeclined: _flk_declined,
    ev.CapacityWarning: _capacity_warning,
    ev.PractitionerRoleEnded: _role_ended,
    ev.FastVardkontaktRequested: _vk_requested,
    ev.FastVardkontaktAppointed: _vk_appointed,
    ev.FastVardkontaktEnded: _vk_ended,
    ev.PersonDeceased: _person_status(PopulationStatus.DECEASED),
    ev.PersonEmigrated: _person_status(PopulationStatus.EMIGRATED),
    ev.PersonMovedOutOfRegion: _person_status(PopulationStatus.MOVED_OUT_OF_REGION),
    ev.ProtectedIdentityRecorded: _protected,
    ev.SaboResidenceRecorded: _sabo,
    ev.ListingRejected: _listing_rejected,
    ev.AssignmentRejected: _assignment_rejected,
    ev.RecordRejected: _record_rejected,
}
