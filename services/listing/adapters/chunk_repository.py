"""The repository of a chunk of commands handled in one PostgreSQL transaction.

The handlers are the same as for a single command; only the repository differs:

* **reads** come from set-based prefetches made once per *round* (:meth:`prefetch`): the chunk's
  person rows are locked in one statement, then the inbox, the persons' records, the units, the
  doctor lists and their roles are read with ``= ANY($1)`` for every command of the round. A read
  the prefetch did not foresee goes to the database as in :class:`ListingRepository` (correct,
  only slower).
* **writes** are planned, not sent (:meth:`execute`, :meth:`add_outbox`, :meth:`record_inbox`),
  and :meth:`flush` sends them as one ``executemany`` per statement: first every command's first
  write, then every command's second write, … (a command's writes stay in their order; a round has
  at most one command per person, so writes of one layer never touch the same rows), then the
  outbox rows in decision order, then the inbox rows.
* a command that fails is taken back (:meth:`begin_command` / :meth:`discard_command`): its
  planned rows, and what it changed in the counters, are dropped; nothing of it reached the
  database.

Counters that span persons (L7 listed count of a unit, F6 list size) are kept in step with the
planned events, so two commands of one round at the same limited unit see each other.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from services.listing.adapters.event_writers import (
    CLOSE_ASSIGNMENT,
    CLOSE_DECLINES,
    CLOSE_LISTING,
    INSERT_ASSIGNMENT,
    INSERT_LISTING,
    DecisionContext,
    OutboxEvent,
)
from services.listing.adapters.repository import ListingRepository
from services.listing.adapters.rows import _json_list, list_from_row, record_from_row, role_from_row
from services.listing.domain import events as ev
from services.listing.domain.model import CareUnit, DoctorList, PatientRecord, PractitionerRole

INBOX_INSERT = """INSERT INTO listing.inbox (message_id, message_type, outcome)
SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])"""
OUTBOX_INSERT = """INSERT INTO listing.outbox (event_type, data, event_time)
SELECT event_type, data, event_time FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[]) WITH ORDINALITY
    AS u(event_type, data, event_time, n) ORDER BY n"""

#: the frequent writes as one set-based statement over column arrays (one execution for a whole
#: layer instead of one per row, as ``executemany`` does); other writes go by ``executemany``
BULK: dict[str, str] = {
    INSERT_LISTING: """INSERT INTO listing.listing (listing_id, patient_key, care_unit_id, registered_on, start_on,
        origin, channel, initiated_by, exemption_reason, command_id)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::date[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::text[])""",
    INSERT_ASSIGNMENT: """INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id,
        list_kind, practitioner_id, coordinating, start_on, command_id)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                             $8::date[], $9::text[])""",
    CLOSE_DECLINES: """UPDATE listing.flk_decline d SET end_on = GREATEST(v.on_date, d.start_on)
        FROM unnest($1::text[], $2::text[], $3::date[]) AS v(patient_key, care_unit_id, on_date)
        WHERE d.patient_key = v.patient_key AND d.care_unit_id = v.care_unit_id AND d.end_on IS NULL""",
    CLOSE_LISTING: """UPDATE listing.listing l SET end_on = GREATEST(v.ended_on, l.start_on), end_reason = v.reason
        FROM unnest($1::text[], $2::text[], $3::date[], $4::text[]) AS v(patient_key, care_unit_id, ended_on, reason)
        WHERE l.patient_key = v.patient_key AND l.care_unit_id = v.care_unit_id AND l.end_on IS NULL""",
    CLOSE_ASSIGNMENT: """UPDATE listing.flk_assignment a SET end_on = GREATEST(v.ended_on, a.start_on),
            end_reason = v.reason
        FROM unnest($1::text[], $2::text[], $3::date[], $4::text[]) AS v(patient_key, list_id, ended_on, reason)
        WHERE a.patient_key = v.patient_key AND a.list_id = v.list_id AND a.end_on IS NULL""",
}


def columns(rows: Sequence[tuple]) -> list[list]:
    """Argument rows as column arrays (for ``unnest``)."""
    return [list(column) for column in zip(*rows)]

DOCTOR_LISTS_OF = """
SELECT q.i, (SELECT d.list_id FROM listing.doctor_list d JOIN listing.practitioner_role r ON r.role_id = d.role_id
             WHERE r.practitioner_id = q.practitioner_id AND r.care_unit_id = q.care_unit_id AND d.kind = 'doctor'
             ORDER BY (r.start_on <= q.d_on AND (r.end_on IS NULL OR r.end_on > q.d_on)) DESC, r.start_on DESC
             LIMIT 1) AS list_id
FROM unnest($1::text[], $2::text[], $3::date[]) WITH ORDINALITY AS q(practitioner_id, care_unit_id, d_on, i)
"""
LOCK_ROLES_OF_LISTS = """
SELECT 1 FROM listing.practitioner_role r JOIN listing.doctor_list d ON d.role_id = r.role_id
WHERE d.list_id = ANY($1::text[]) ORDER BY r.role_id FOR SHARE OF r
"""
LOAD_LISTS = """
SELECT d.list_id, d.care_unit_id, d.display_name, d.kind, d.role_id,
       r.role_id AS r_role_id, r.practitioner_id, r.care_unit_id AS r_care_unit_id, r.profession,
       r.legitimerad, r.employment_type, r.specialty, r.fte, r.individual_capacity, r.start_on, r.end_on,
       (SELECT count(*) FROM listing.flk_assignment a WHERE a.list_id = d.list_id AND a.end_on IS NULL) AS list_size
FROM listing.doctor_list d LEFT JOIN listing.practitioner_role r ON r.role_id = d.role_id
WHERE d.list_id = ANY($1::text[])
"""


def _json(value: Any) -> str:
    """What ``json.dumps(value, ensure_ascii=False)`` gives PostgreSQL's jsonb, at a fraction of the cost."""
    return orjson.dumps(value).decode()


@dataclass(frozen=True)
class Wants:
    """What the commands of a round will read (collected from their data by the dispatcher)."""

    patient_keys: Sequence[str] = ()
    message_ids: Sequence[str] = ()
    unit_ids: Sequence[str] = ()
    list_ids: Sequence[str] = ()
    doctor_lists: Sequence[tuple[str, str, date]] = ()  # (practitioner_id, care_unit_id, on)
    changes_since: date | None = None


class PrefetchedInbox:
    """``inbox_outcome`` from a chunk's inbox read at once (``_inbox``: the outcomes known, in the
    database or planned; ``_inbox_absent``: the ids known to have none), else the repository's own."""

    _inbox: dict[str, dict | None]
    _inbox_absent: set[str]

    async def inbox_outcome(self, message_id: str) -> dict | None | bool:
        if message_id in self._inbox:
            return self._inbox[message_id]
        if message_id in self._inbox_absent:
            return False
        return await super().inbox_outcome(message_id)


class ChunkRepository(PrefetchedInbox, ListingRepository):
    """Reads from round prefetches, writes planned and flushed in batches (see the module doc)."""

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self._locked: set[str] = set()
        self._existing: set[str] = set()
        self._inbox: dict[str, dict | None] = {}  # known outcomes: in the database or planned
        self._inbox_absent: set[str] = set()  # checked this round: not in the inbox
        self._records: dict[str, PatientRecord] = {}
        self._records_since: date | None = None
        self._open_listing: dict[tuple[str, str], str] = {}
        self._open_assignment: dict[tuple[str, str], str] = {}
        self._units: dict[str, CareUnit] = {}
        self._locked_units: set[str] = set()
        self._listed: dict[str, int] = {}
        self._doctor_list: dict[tuple[str, str, date], str | None] = {}
        self._lists: dict[str, tuple[DoctorList | None, PractitionerRole | None]] = {}
        self._role_locked: set[str] = set()
        self._sizes: dict[str, int] = {}
        # the plan
        self._writes: list[tuple[int, str, tuple]] = []  # (layer, sql, args)
        self._outbox: list[tuple] = []
        self._inbox_rows: list[tuple] = []
        self._undo: list[Callable[[], None]] = []
        self._layer = 0
        self._mark: tuple[int, int, int, int] = (0, 0, 0, 0)

    # ------------------------------------------------------------------ rounds
    async def prefetch(self, wants: Wants) -> None:
        """Lock and read, set-based, what the round's commands will ask for."""
        conn = self.conn
        await self.lock_persons(wants.patient_keys)
        ids = sorted(set(wants.message_ids) - set(self._inbox))
        if ids:
            rows = await conn.fetch("SELECT message_id, outcome FROM listing.inbox WHERE message_id = ANY($1::text[])",
                                    ids)
            found = {r["message_id"]: r["outcome"] for r in rows}
            for message_id in ids:
                if message_id in found:
                    self._inbox[message_id] = json.loads(found[message_id]) if found[message_id] is not None else None
            self._inbox_absent = set(ids) - set(found)
        else:
            self._inbox_absent = set()
        # the persons' records are read again every round: earlier rounds of the chunk changed them
        self._records, self._records_since = {}, None
        self._open_listing.clear()
        self._open_assignment.clear()
        keys = sorted(set(wants.patient_keys) & self._existing)
        if keys and wants.changes_since is not None:
            self._records = await self._load_records(keys, wants.changes_since)
            self._records_since = wants.changes_since
        units = sorted(set(wants.unit_ids) - set(self._units))
        if units:
            self._units.update(await super().load_units(units))
        queries = [q for q in dict.fromkeys(wants.doctor_lists) if q not in self._doctor_list]
        if queries:
            rows = await conn.fetch(DOCTOR_LISTS_OF, [q[0] for q in queries], [q[1] for q in queries],
                                    [q[2] for q in queries])
            for r in rows:
                self._doctor_list[queries[r["i"] - 1]] = r["list_id"]
        wanted_lists = set(wants.list_ids) | {v for q in wants.doctor_lists if (v := self._doctor_list.get(q))}
        lists = sorted(wanted_lists - set(self._lists))
        if lists:
            await conn.execute(LOCK_ROLES_OF_LISTS, lists)
            rows = await conn.fetch(LOAD_LISTS, lists)
            for list_id in lists:
                self._lists[list_id] = (None, None)
                self._sizes.setdefault(list_id, 0)
            for row in rows:
                role = None
                if row["r_role_id"] is not None:
                    role = role_from_row({**dict(row), "role_id": row["r_role_id"],
                                          "care_unit_id": row["r_care_unit_id"]})
                self._lists[row["list_id"]] = (list_from_row(row), role)
                self._sizes[row["list_id"]] = row["list_size"]
            self._role_locked.update(lists)

    async def _load_records(self, keys: Sequence[str], since: date) -> dict[str, PatientRecord]:
        from services.listing.adapters.rows import LOAD_PATIENTS

        records = {}
        for row in await self.conn.fetch(LOAD_PATIENTS, list(keys), since):
            key = row["patient_key"]
            listings, assignments = _json_list(row["listings"]), _json_list(row["assignments"])
            for x in listings:
                if x["end_on"] is None:
                    self._open_listing[(key, x["care_unit_id"])] = str(x["listing_id"])
            for x in assignments:
                self._open_assignment[(key, x["list_id"])] = str(x["assignment_id"])
            records[key] = record_from_row({**dict(row), "listings": listings, "assignments": assignments})
        return records

    async def flush(self) -> None:
        """Send the round's planned rows: state in layers, then the outbox, then the inbox."""
        layers: dict[int, dict[str, list[tuple]]] = {}
        for layer, sql, args in self._writes:
            layers.setdefault(layer, {}).setdefault(sql, []).append(args)
        for layer in sorted(layers):
            for sql, rows in layers[layer].items():
                if sql in BULK and len(rows) > 1:
                    await self.conn.execute(BULK[sql], *columns(rows))
                else:
                    await self.conn.executemany(sql, rows)
        if self._outbox:
            await self.conn.execute(OUTBOX_INSERT, *columns(self._outbox))
        if self._inbox_rows:
            await self.conn.execute(INBOX_INSERT, *columns(self._inbox_rows))
        self._writes, self._outbox, self._inbox_rows, self._undo = [], [], [], []
        self._mark = (0, 0, 0, 0)

    # ------------------------------------------------------------------ one command
    def begin_command(self) -> None:
        self._layer = 0
        self._mark = (len(self._writes), len(self._outbox), len(self._inbox_rows), len(self._undo))

    def discard_command(self) -> None:
        """Take back everything the current command planned."""
        writes, outbox, inbox, undo = self._mark
        del self._writes[writes:], self._outbox[outbox:], self._inbox_rows[inbox:]
        while len(self._undo) > undo:
            self._undo.pop()()

    def _set(self, mapping: dict, key: Any, value: Any) -> None:
        """``mapping[key] = value``, undone by :meth:`discard_command`."""
        self._remember(mapping, key)
        mapping[key] = value

    def _pop(self, mapping: dict, key: Any) -> Any:
        """``mapping.pop(key, None)``, undone by :meth:`discard_command`."""
        self._remember(mapping, key)
        return mapping.pop(key, None)

    def _remember(self, mapping: dict, key: Any) -> None:
        if key in mapping:
            previous = mapping[key]
            self._undo.append(lambda: mapping.__setitem__(key, previous))
        else:
            self._undo.append(lambda: mapping.pop(key, None))

    # ------------------------------------------------------------------ inbox, outbox
    async def record_inbox(self, message_id: str, message_type: str, outcome: dict | None) -> None:
        self._inbox_rows.append((message_id, message_type, _json(outcome) if outcome is not None else None))
        self._set(self._inbox, message_id, outcome)

    async def add_outbox(self, events: Sequence[OutboxEvent], at: datetime) -> None:
        self._outbox.extend((e.event_type, _json(e.data), at) for e in events)

    # ------------------------------------------------------------------ reads
    async def lock_persons(self, keys: Iterable[str]) -> list[str]:
        wanted = set(keys)
        missing = sorted(wanted - self._locked)
        if missing:
            self._existing.update(await super().lock_persons(missing))
            self._locked.update(missing)
        return sorted(wanted & self._existing)

    async def load_patients(self, keys: Sequence[str], changes_since: date) -> dict[str, PatientRecord]:
        wanted = [k for k in keys if k in self._existing]
        if (self._records_since is not None and self._records_since <= changes_since
                and all(k in self._records for k in wanted)):
            return {k: self._records[k] for k in wanted}
        return await self._load_records(keys, changes_since)

    async def load_units(self, hsa_ids: Iterable[str]) -> dict[str, CareUnit]:
        ids = {u for u in hsa_ids if u}
        missing = ids - set(self._units)
        if missing:
            self._units.update(await super().load_units(missing))
        return {u: self._units[u] for u in ids if u in self._units}

    async def lock_unit(self, hsa_id: str) -> None:
        if hsa_id not in self._locked_units:
            await super().lock_unit(hsa_id)
            self._locked_units.add(hsa_id)

    async def listed_count(self, hsa_id: str) -> int:
        if hsa_id not in self._listed:  # read once (after the unit's lock), then kept in step
            self._listed[hsa_id] = await super().listed_count(hsa_id)
        return self._listed[hsa_id]

    async def load_list(self, list_id: str, lock_role: bool = False
                        ) -> tuple[DoctorList | None, PractitionerRole | None, int]:
        if list_id not in self._lists or (lock_role and list_id not in self._role_locked):
            doctor_list, role, size = await super().load_list(list_id, lock_role)
            self._lists[list_id] = (doctor_list, role)
            self._sizes[list_id] = size
            if lock_role:
                self._role_locked.add(list_id)
        doctor_list, role = self._lists[list_id]
        return doctor_list, role, self._sizes.get(list_id, 0)

    async def doctor_list_of(self, practitioner_id: str, care_unit_id: str, on: date) -> str | None:
        key = (practitioner_id, care_unit_id, on)
        if key not in self._doctor_list:
            self._doctor_list[key] = await super().doctor_list_of(practitioner_id, care_unit_id, on)
        return self._doctor_list[key]

    # ------------------------------------------------------------------ writes
    async def execute(self, sql: str, *args: Any) -> None:
        self._writes.append((self._layer, sql, args))
        self._layer += 1

    async def close_listing(self, patient_key: str, care_unit_id: str, ended_on: date, reason: str) -> str | None:
        await self.execute(CLOSE_LISTING, patient_key, care_unit_id, ended_on, reason)
        return self._pop(self._open_listing, (patient_key, care_unit_id))

    async def close_assignment(self, patient_key: str, list_id: str, ended_on: date, reason: str) -> str | None:
        await self.execute(CLOSE_ASSIGNMENT, patient_key, list_id, ended_on, reason)
        return self._pop(self._open_assignment, (patient_key, list_id))

    async def close_fast_vardkontakt(self, patient_key: str, care_unit_id: str, practitioner_id: str, ended_on: date,
                                     reason: str) -> str | None:
        # only the population register's facts end a fast vårdkontakt (P1), and their chunks run such a
        # decision direct (fact_chunk_repository.py); a planned write could not say which appointment it
        # ended, so refuse rather than lose the event
        raise TypeError("a chunk of commands does not end fast vårdkontakter")

    async def persist_one(self, e: ev.Event, ctx: DecisionContext, index: int) -> OutboxEvent | None:
        p = await super().persist_one(e, ctx, index)
        if p is not None:  # what a later event of the same command may end (an FLK whose doctor has left)
            if p.event_type == "listing.started.v1":
                self._set(self._open_listing, (p.data["patient_key"], p.data["care_unit_id"]), p.data["listing_id"])
            elif p.event_type == "fast_lakarkontakt.assigned.v1":
                self._set(self._open_assignment, (p.data["patient_key"], p.data["list_id"]), p.data["assignment_id"])
        # the counters other persons' commands of this chunk read (L7, F6)
        if isinstance(e, (ev.ListingStarted, ev.ListingEnded)) and e.care_unit_id in self._listed:
            step = 1 if isinstance(e, ev.ListingStarted) else -1
            self._set(self._listed, e.care_unit_id, max(0, self._listed[e.care_unit_id] + step))
        elif isinstance(e, (ev.FastLakarkontaktAssigned, ev.FastLakarkontaktEnded)) and e.list_id in self._sizes:
            step = 1 if isinstance(e, ev.FastLakarkontaktAssigned) else -1
            self._set(self._sizes, e.list_id, max(0, self._sizes[e.list_id] + step))
        return p
