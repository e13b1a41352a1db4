"""The repository of a chunk of register facts handled in one PostgreSQL transaction.

The fact handlers are the same as for a single fact (service_layer/handlers.py); only the
repository differs (service_layer/fact_chunks.py runs them):

* **reads** the handlers make on every fact come from one prefetch per chunk (:meth:`prefetch`):
  the persons of the chunk's population-register and SÄBO facts are locked and read in one
  statement, the inbox is read for every message id in one statement.
* **writes** of the frequent, decision-free facts are *planned*, not sent: a new or changed
  person (``upsert_person``, ``mark_protected_identity``), a risk assessment, the inbox row.
  :meth:`flush` sends them as one ``unnest`` statement per kind (persons inserted, marked
  protected, updated; risk assessments; inbox rows). A person has at most one planned person
  write per flush (a second one flushes the plan first), so a set-based update never meets a
  person twice and the history trigger keeps one row per change, as fact by fact.
* anything else (a decision of P1, a SÄBO period, a roster or unit fact) goes **direct**: the
  first statement a handler sends through :attr:`conn` takes a savepoint, writes this fact's own
  planned rows and runs the statement; the rest of the fact runs on the connection as in
  :class:`ListingRepository`. Before that, the earlier facts' plan is written when it holds a row
  of the fact's person, or always for a fact without a person (a roster or unit fact): the
  database then holds what fact-by-fact handling would have written before this fact for
  everything the fact reads (a person's facts read and write that person's rows and their own
  inbox row; the outbox rows of the chunk are all written direct, in arrival order).
* a fact that fails is taken back (:meth:`begin_fact` / :meth:`end_fact`): its planned rows and
  what it changed in the caches are dropped, and a direct fact is rolled back to its savepoint.
  If a flush of earlier facts fails, the transaction is lost: :attr:`broken` is set and the chunk
  must roll back whole.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

import orjson

from services.listing.adapters import reference
from services.listing.adapters.chunk_repository import INBOX_INSERT, PrefetchedInbox, columns
from services.listing.adapters.repository import ListingRepository

LOCK_AND_READ_PERSONS = """SELECT patient_key, population_status, status_date, home_region, birth_date, guardian_keys
FROM listing.person WHERE patient_key = ANY($1::text[]) ORDER BY patient_key FOR UPDATE"""
# the SÄBO flag of a new person is read when it is written, as fact by fact (a residence fact of the
# chunk handled before it is in the database by then: it went direct, after a flush)
PERSON_INSERT = """INSERT INTO listing.person (patient_key, population_status, status_date, home_region, birth_date,
                                   sabo_resident, guardian_keys)
SELECT u.k, u.s, u.sd, u.r, u.b,
       EXISTS (SELECT 1 FROM listing.sabo_residence x WHERE x.patient_key = u.k AND x.period @> current_date),
       CASE WHEN u.g IS NULL THEN NULL
            ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(u.g) WITH ORDINALITY AS t(e, o) ORDER BY o) END
FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::date[], $6::jsonb[]) WITH ORDINALITY
    AS u(k, s, sd, r, b, g, n) ORDER BY n"""
PERSON_PROTECTED = "UPDATE listing.person SET protected_identity = true WHERE patient_key = ANY($1::text[])"
# the whole register part of the row is set from what was read under the lock plus the fact's changes
PERSON_UPDATE = """UPDATE listing.person p SET population_status = u.s, status_date = u.sd, home_region = u.r,
    birth_date = u.b,
    guardian_keys = CASE WHEN u.g IS NULL THEN NULL
        ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(u.g) WITH ORDINALITY AS t(e, o) ORDER BY o) END,
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::date[], $6::jsonb[]) AS u(k, s, sd, r, b, g)
WHERE p.patient_key = u.k"""
RISK_INSERT = """INSERT INTO listing.risk_assessment (assessment_id, patient_key, rub, acg_version, lookback_months,
                                          computed_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[], $5::int[], $6::timestamptz[])
ON CONFLICT (assessment_id) DO NOTHING"""

#: the planned kinds, in the order a flush writes them
INSERT, PROTECT, UPDATE, RISK, INBOX = "person_insert", "person_protected", "person_update", "risk", "inbox"
_ORDER = (INSERT, PROTECT, UPDATE, RISK, INBOX)


def _person_args(key: str, row: dict[str, Any]) -> tuple:
    guardians = row["guardian_keys"]
    return (key, row["population_status"], row["status_date"], row["home_region"], row["birth_date"],
            orjson.dumps(list(guardians)).decode() if guardians is not None else None)


def _person_writes(plan: Sequence[tuple[str, str | None, tuple]]) -> set[str]:
    return {key for kind, key, _ in plan if key is not None and kind in (INSERT, PROTECT, UPDATE)}


class _Direct:
    """The chunk's connection as the handlers' statements reach it: each statement first turns the
    current fact direct (:meth:`FactChunkRepository.go_direct`)."""

    def __init__(self, repo: FactChunkRepository, conn: Any) -> None:
        self._repo, self._conn = repo, conn

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        await self._repo.go_direct()
        return await self._conn.fetch(*args, **kwargs)

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        await self._repo.go_direct()
        return await self._conn.fetchrow(*args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        await self._repo.go_direct()
        return await self._conn.fetchval(*args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        await self._repo.go_direct()
        return await self._conn.execute(*args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        await self._repo.go_direct()
        return await self._conn.executemany(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class FactChunkRepository(PrefetchedInbox, ListingRepository):
    """Plans the decision-free facts' rows, runs the others direct (see the module doc)."""

    def __init__(self, conn: Any) -> None:
        super().__init__(_Direct(self, conn))
        self.raw = conn
        self.broken = False
        self._rows: dict[str, dict[str, Any] | None] = {}  # persons locked and read; None: not registered
        self._inbox: dict[str, dict | None] = {}  # known outcomes: in the database or planned
        self._inbox_absent: set[str] = set()
        self._plan: list[tuple[str, str | None, tuple]] = []  # (kind, person or None, args)
        self._planned_persons: set[str] = set()  # persons with a planned person write
        self._undo: list[Callable[[], None]] = []
        self._mark = (0, 0)
        self._key: str | None = None
        self._direct = False
        self._savepoint: Any = None

    # ------------------------------------------------------------------ the chunk
    async def prefetch(self, person_keys: Iterable[str], message_ids: Iterable[str]) -> None:
        """Lock and read the persons (key order, as ``lock_persons``), read the inbox."""
        keys = sorted(set(person_keys))
        if keys:
            rows = {r["patient_key"]: dict(r) for r in await self.raw.fetch(LOCK_AND_READ_PERSONS, keys)}
            for key in keys:
                self._rows[key] = rows.get(key)
        ids = sorted(set(message_ids))
        if ids:
            found = {r["message_id"]: r["outcome"] for r in await self.raw.fetch(
                "SELECT message_id, outcome FROM listing.inbox WHERE message_id = ANY($1::text[])", ids)}
            for message_id, outcome in found.items():
                self._inbox[message_id] = json.loads(outcome) if outcome is not None else None
            self._inbox_absent = set(ids) - set(found)

    async def flush(self) -> None:
        """Send the whole plan (the chunk's end)."""
        await self._flush_upto(len(self._plan))

    async def _flush_upto(self, n: int) -> None:
        """Send the first ``n`` planned rows, one statement per kind; a failure breaks the chunk."""
        head, self._plan = self._plan[:n], self._plan[n:]
        self._mark = (max(0, self._mark[0] - n), self._mark[1])
        self._planned_persons = _person_writes(self._plan)
        try:
            await self._send(head)
        except BaseException:
            self.broken = True
            raise

    async def _send(self, planned: Sequence[tuple[str, str | None, tuple]]) -> None:
        by_kind: dict[str, list[tuple]] = {}
        for kind, _, args in planned:
            by_kind.setdefault(kind, []).append(args)
        for kind in _ORDER:
            rows = by_kind.get(kind)
            if not rows:
                continue
            if kind == PROTECT:
                await self.raw.execute(PERSON_PROTECTED, [r[0] for r in rows])
            else:
                sql = {INSERT: PERSON_INSERT, UPDATE: PERSON_UPDATE, RISK: RISK_INSERT, INBOX: INBOX_INSERT}[kind]
                await self.raw.execute(sql, *columns(rows))

    # ------------------------------------------------------------------ one fact
    def begin_fact(self, patient_key: str | None) -> None:
        self._key = patient_key
        self._direct = False
        self._savepoint = None
        self._mark = (len(self._plan), len(self._undo))

    async def end_fact(self, ok: bool) -> None:
        """The fact is done: kept, or taken back whole."""
        planned, undo = self._mark
        savepoint, self._savepoint = self._savepoint, None
        if savepoint is not None:
            if ok:
                await savepoint.commit()  # RELEASE SAVEPOINT
            else:
                await savepoint.rollback()
        if not ok:
            del self._plan[planned:]
            self._planned_persons = _person_writes(self._plan)
            while len(self._undo) > undo:
                self._undo.pop()()
        if self._direct and self._key is not None:
            # the fact wrote the person's row itself (a decision): read it again, direct, next time
            self._rows.pop(self._key, None)
        self._direct = False

    async def go_direct(self) -> None:
        """The current fact needs the database: the earlier facts' rows it may read first (see the
        module doc), then a savepoint, then its own planned rows."""
        if self._direct:
            return
        self._direct = True
        if self._key is None or any(key == self._key for _, key, _ in self._plan[:self._mark[0]]):
            await self._flush_upto(self._mark[0])
        self._savepoint = self.raw.transaction()
        await self._savepoint.start()
        own = self._mark[0]
        own_rows, self._plan = self._plan[own:], self._plan[:own]
        self._planned_persons = _person_writes(self._plan)
        await self._send(own_rows)

    def _set(self, mapping: dict, key: Any, value: Any) -> None:
        """``mapping[key] = value``, undone when the fact is taken back."""
        if key in mapping:
            previous = mapping[key]
            self._undo.append(lambda: mapping.__setitem__(key, previous))
        else:
            self._undo.append(lambda: mapping.pop(key, None))
        mapping[key] = value

    # ------------------------------------------------------------------ inbox
    async def record_inbox(self, message_id: str, message_type: str, outcome: dict | None) -> None:
        if self._direct:
            await super().record_inbox(message_id, message_type, outcome)
        else:
            self._plan.append((INBOX, None, (message_id, message_type,
                                             json.dumps(outcome) if outcome is not None else None)))
        self._set(self._inbox, message_id, outcome)

    # ------------------------------------------------------------------ persons
    async def lock_persons(self, keys: Iterable[str]) -> list[str]:
        wanted = set(keys)
        if self._direct or not wanted <= self._rows.keys():
            return await super().lock_persons(wanted)
        return sorted(k for k in wanted if self._rows[k] is not None)

    async def upsert_person(self, patient_key: str, *, population_status: str, home_region: str | None,
                            birth_date: date | None, status_date: date | None,
                            guardian_keys: list[str] | None = None) -> str | None:
        if self._direct or patient_key not in self._rows:
            return await super().upsert_person(
                patient_key, population_status=population_status, home_region=home_region,
                birth_date=birth_date, status_date=status_date, guardian_keys=guardian_keys)
        if patient_key in self._planned_persons:  # one person write per flush: send the earlier ones
            await self._flush_upto(self._mark[0])
        row = self._rows[patient_key]
        if row is None:
            new = reference.new_person(population_status, home_region, birth_date, status_date, guardian_keys)
            self._plan.append((INSERT, patient_key, _person_args(patient_key, new)))
            self._planned_persons.add(patient_key)
            self._set(self._rows, patient_key, new)
            return None
        changes = reference.person_changes(row, population_status=population_status, home_region=home_region,
                                           birth_date=birth_date, status_date=status_date,
                                           guardian_keys=guardian_keys)
        if changes:
            changed = {**row, **changes}
            self._plan.append((UPDATE, patient_key, _person_args(patient_key, changed)))
            self._planned_persons.add(patient_key)
            self._set(self._rows, patient_key, changed)
        return row["population_status"]

    async def mark_protected_identity(self, patient_key: str) -> None:
        if self._direct:
            return await super().mark_protected_identity(patient_key)
        self._plan.append((PROTECT, patient_key, (patient_key,)))
        self._planned_persons.add(patient_key)

    # ------------------------------------------------------------------ risk (RUB)
    async def add_risk_assessment(self, data: dict) -> None:
        if self._direct:
            return await super().add_risk_assessment(data)
        self._plan.append((RISK, data.get("patient_key"), reference.risk_row(data)))
