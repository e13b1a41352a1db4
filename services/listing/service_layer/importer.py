"""``flk listing import``: migrate a region's listing extract into the register.

Two passes over the file, with bounded memory (rows are streamed; one compact entry per person):

1. **Check** every row (``domain.import_check.classify_row``) and index persons
   (``PersonIndex``: several listings — L1, several FLKs — F5, duplicates).
2. **Import** (or, with ``dry_run``, simulate) in chunks: the persons of a chunk are locked and
   loaded, and each row becomes commands — ``RequestListing`` (origin ``import``, channel
   ``import``, initiated by the region) and ``AssignFastLakarkontakt`` to the doctor's list or,
   for a locum the profile does not accept as FLK (F2), to the unit's fictive list (F3) — decided
   by the domain's ``decide()`` under the region's policy profile. What is accepted is written by
   the same repository code the service uses (``persist`` + ``add_outbox``), so
   ``listing.events.v1`` gets the history once the relay runs. Persons new to the register are
   created (folkbokförda in the unit's region until the population register says otherwise) with
   their re-identification row in ``platform.person_identity`` (AES-GCM, the vault).

Everything is **one transaction**; each row runs in a savepoint, so a row the database refuses
does not abort the others. Rows the register already holds change nothing (re-running a file
is a no-op); rejected rows are reported, not written (no ``listing.rejected`` events: a re-run
would repeat them). A dry run reads in a read-only transaction and writes nothing.

Units and doctors are not created here: they come from ``region.care-units.v1`` and the roster
(``roster.practitioner-roles.v1``) through the listing service, and must be in the register first.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from flk.events.envelope import derived_id
from flk.security.pseudonym import PersonId, patient_key
from flk.security.vault import IdentityVault
from services.listing.adapters import reference as reference_writes
from services.listing.adapters.event_writers import DecisionContext
from services.listing.adapters.extract_file import ExtractReader
from services.listing.adapters.import_register import Register, StatementBatch
from services.listing.adapters.repository import ListingRepository
from services.listing.domain import events as ev
from services.listing.domain.evolve import evolve_all
from services.listing.domain.import_check import (
    FICTIVE_LABEL,
    ImportReport,
    ImportRow,
    PersonIndex,
    Target,
    Violation,
    classify_row,
    count_changes,
    flk_command,
    listing_command,
    over_capacity,
)
from services.listing.domain.model import (
    DoctorList,
    ListingState,
    ListKind,
    PatientRecord,
    Person,
    PopulationStatus,
    fictive_list_display_name,
    months_before,
)
from services.listing.domain.policy import PolicyProfile, profile_for
from services.listing.domain.reasons import RejectionReason
from services.listing.domain.rules import decide


class ImportProgress(Protocol):
    """Where the import reports rows done (the CLI draws it: entrypoints/import_report.Progress)."""

    def tick(self, phase: str, rows: int, reader: ExtractReader | None = None) -> None: ...

    def done(self) -> None: ...


class NoProgress:
    def tick(self, phase: str, rows: int, reader: ExtractReader | None = None) -> None:
        pass

    def done(self) -> None:
        pass


REJECTIONS = (ev.ListingRejected, ev.AssignmentRejected, ev.RecordRejected)
IMPORT_LOCK_ID = 0x666C6B_494D  # pg_advisory_xact_lock: one import at a time
EMPTY: MappingProxyType = MappingProxyType({})


# --------------------------------------------------------------------------- the import


@dataclass
class ImportOptions:
    path: Path
    profile: str
    as_of: date
    dry_run: bool
    reservnummer_pattern: str | None = None
    encoding: str = "utf-8-sig"
    chunk_rows: int = 1_000
    max_report_lines: int = 10_000


class ListingImport:
    """One run of the import on one connection (see the module doc)."""

    def __init__(self, conn: Any, options: ImportOptions, pseudonym_key: bytes, vault: IdentityVault,
                 progress: ImportProgress | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.conn = conn
        self.options = options
        self.key = pseudonym_key
        self.vault = vault
        self.progress = progress or NoProgress()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.policy: PolicyProfile = profile_for(options.profile, options.as_of)
        self.report = ImportReport(profile=self.policy.ref, as_of=options.as_of, dry_run=options.dry_run,
                                   max_lines=options.max_report_lines)
        self.repo = ListingRepository(conn)
        self.index = PersonIndex(self.policy)
        self.named_lists: set[str] = set()
        self._live: dict[str, tuple[PatientRecord, bool]] = {}  # persons with rows still to come

    # ------------------------------------------------------------------ entry
    async def run(self) -> ImportReport:
        reader = ExtractReader(self.options.path, self.options.encoding)
        if self.options.dry_run:
            async with self.conn.transaction(readonly=True, isolation="repeatable_read"):
                await self._run(reader, write=False)
        else:
            async with self.conn.transaction():
                await self.conn.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK_ID)
                await self._run(reader, write=True)
        return self.report

    async def _run(self, reader: ExtractReader, write: bool) -> None:
        self.register = await Register.load(self.conn, lock=write)
        self.reference = self.register.reference(self.options.as_of)
        self._units = MappingProxyType(self.register.units)
        self._roles = MappingProxyType(self.register.roles)
        self._lists = MappingProxyType(self.register.lists)
        self._check(reader)
        await self._import(reader, write)
        sizes = {k: v for k, v in self.register.list_sizes.items() if k in self.named_lists}
        self.report.over_capacity = over_capacity(sizes, self.register.lists, self.register.roles, self.policy)

    # ------------------------------------------------------------------ pass 1
    def _check(self, reader: ExtractReader) -> None:
        report = self.report
        for line, fields in reader.rows():
            report.rows += 1
            self.progress.tick("checking", report.rows, reader)
            checked = classify_row(line, fields, reader.columns, self.reference, self.policy, self.options.as_of,
                                   self.options.reservnummer_pattern)
            for violation in checked.violations:
                report.add(violation, [line])
            if checked.row is None:
                continue
            if checked.row.list_id is not None:
                self.named_lists.add(checked.row.list_id)
            for violation, lines, new_person in self.index.observe(checked.row):
                report.add(violation, lines, new_person)
        self.progress.done()
        report.header = reader.header
        report.persons = len(self.index)

    # ------------------------------------------------------------------ pass 2
    async def _import(self, reader: ExtractReader, write: bool) -> None:
        chunk: list[ImportRow] = []
        done_rows = 0
        for line, fields in reader.rows():
            done_rows += 1
            self.progress.tick("importing" if write else "simulating", done_rows, reader)
            row = classify_row(line, fields, reader.columns, self.reference, self.policy, self.options.as_of,
                               self.options.reservnummer_pattern).row
            if row is None or not self.index.verdict(row.person).import_listing:
                continue
            chunk.append(row)
            if len(chunk) >= self.options.chunk_rows:
                await self._chunk(chunk, write)
                chunk = []
        if chunk:
            await self._chunk(chunk, write)
        self.progress.done()

    def _key(self, person: PersonId) -> str:
        return patient_key(person, self.key)

    async def _chunk(self, rows: list[ImportRow], write: bool) -> None:
        """Decide a chunk's rows in memory, then write them in one batch (a savepoint). If the batch
        fails, the chunk is undone in memory and redone row by row, each row in its own savepoint,
        so only the rows the database refuses are lost (and reported)."""
        keys = [self._key(r.person) for r in rows]
        await self._load(rows, keys, write)
        if not write:
            for row, key in zip(rows, keys, strict=True):
                if (plan := await self._plan(row, key, write)) is not None:
                    self._accept(plan)
                self._forget_after_last_row(row, key)
            return
        saved = (copy.deepcopy(self.report), {k: self._live.get(k) for k in keys},
                 dict(self.register.listed), dict(self.register.list_sizes))
        plans = []
        for row, key in zip(rows, keys, strict=True):
            if (plan := await self._plan(row, key, write)) is not None:
                plans.append(plan)
                self._accept(plan)
            self._forget_after_last_row(row, key)
        try:
            async with self.conn.transaction():
                self.report.outbox_events += await self._write_batch(plans)
            return
        except Exception:  # noqa: BLE001 - find the row(s) the database refuses, below
            pass
        self.report, live, self.register.listed, self.register.list_sizes = saved
        for k, entry in live.items():
            if entry is None:
                self._live.pop(k, None)
            else:
                self._live[k] = entry
        for row, key in zip(rows, keys, strict=True):
            plan = await self._plan(row, key, write)
            if plan is not None:
                try:
                    async with self.conn.transaction():  # a savepoint: this row only
                        outbox = await self._write(plan, self.repo)
                except Exception:  # noqa: BLE001 - reported by line; the other rows go on
                    self.report.add_failure(row.line)  # the person's state stays the one before the row
                else:
                    self._accept(plan)
                    self.report.outbox_events += outbox
            self._forget_after_last_row(row, key)

    async def _load(self, rows: list[ImportRow], keys: list[str], write: bool) -> None:
        """The chunk's persons into memory: from the register (locked when writing), else new."""
        to_load = sorted({k for k in keys if k not in self._live})
        if not to_load:
            return
        if write:
            await self.repo.lock_persons(to_load)
        since = months_before(self.options.as_of, self.policy.l5_window_months + 1)
        loaded = await self.repo.load_patients(to_load, since)
        for k, record in loaded.items():
            self._live[k] = (record, False)
        new_keys = [k for k in to_load if k not in loaded]
        if not new_keys:
            return
        sabo = {r["patient_key"] for r in await self.conn.fetch(
            "SELECT DISTINCT patient_key FROM listing.sabo_residence "
            "WHERE patient_key = ANY($1::text[]) AND period @> $2::date", new_keys, self.options.as_of)}
        for row, key in zip(rows, keys, strict=True):
            if key not in self._live:  # a person the register does not know yet
                unit = self.register.units[row.care_unit_id]
                person = Person(patient_key=key, population_status=PopulationStatus.FOLKBOKFORD,
                                home_region=unit.region, birth_date=birth_date_of(row.person),
                                sabo_resident=key in sabo)
                self._live[key] = (PatientRecord(person=person), True)

    def _forget_after_last_row(self, row: ImportRow, key: str) -> None:
        if self.index.verdict(row.person).last_line <= row.line:
            self._live.pop(key, None)

    def _state(self, record: PatientRecord) -> ListingState:
        return ListingState(patients=MappingProxyType({record.patient_key: record}), units=self._units,
                            roles=self._roles, lists=self._lists,
                            listed_count_by_unit=MappingProxyType(self.register.listed),
                            list_size_by_list=MappingProxyType(self.register.list_sizes))

    def _evolve(self, record: PatientRecord, events: list[ev.Event]) -> PatientRecord:
        state = replace(self._state(record), listed_count_by_unit=EMPTY, list_size_by_list=EMPTY)
        return evolve_all(state, events).patients[record.patient_key]

    def _decide(self, record: PatientRecord, command: Any) -> tuple[list[ev.Event], RejectionReason | None]:
        events = decide(self._state(record), command, self.policy)
        rejection = next((e for e in events if isinstance(e, REJECTIONS)), None)
        return events, rejection.reason if rejection is not None else None

    async def _fictive_list(self, unit_id: str, write: bool) -> str:
        """The unit's fictive list ``"<unit> Dr X"`` (F3), created on first need."""
        found = self.register.fictive_by_unit.get(unit_id)
        if found is not None:
            return found
        unit = self.register.units[unit_id]
        list_id = f"F-{unit_id}-{FICTIVE_LABEL}"[:64]
        if write:
            await reference_writes.add_fictive_list(self.conn, unit_id, FICTIVE_LABEL, list_id)
        self.register.lists[list_id] = DoctorList(list_id, unit_id, fictive_list_display_name(unit.name, FICTIVE_LABEL),
                                                  ListKind.FICTIVE)
        self.register.fictive_by_unit[unit_id] = list_id
        return list_id

    async def _plan(self, row: ImportRow, key: str, write: bool) -> RowPlan | None:
        """Decide a row (listing, then FLK) on the person's current state; report what is rejected.
        None when there is nothing to write."""
        report, on = self.report, self.options.as_of
        record, is_new = self._live[key]
        decided: list[tuple[str, list[ev.Event]]] = []  # (message id, accepted events)
        flk_rejected = False

        command = listing_command(key, row, record, on)
        if isinstance(command, Violation):
            report.add(command, [row.line])
            return None
        if command is not None:
            events, rejected = self._decide(record, command)
            if rejected is not None:
                report.add_rejection(rejected, row.line, listing=True)
                return None
            decided.append((derived_id("listing.import", key, row.care_unit_id, on), events))
            record = self._evolve(record, events)

        target = row.target if self.index.verdict(row.person).import_flk else Target.NONE
        if target is not Target.NONE:
            fictive = target is Target.FICTIVE
            list_id = await self._fictive_list(row.care_unit_id, write) if fictive else row.list_id
            assert list_id is not None
            assign = flk_command(key, list_id, ListKind.FICTIVE if fictive else ListKind.DOCTOR, record, on)
            if assign is not None:
                events, rejected = self._decide(record, assign)
                if rejected is RejectionReason.EMPLOYMENT_NOT_ELIGIBLE and self.policy.f3_fictive_lists_enabled:
                    # the roster says locum (F2): the patient belongs on the fictive list (F3)
                    report.add(Violation.LOCUM_AS_FLK, [row.line])
                    list_id = await self._fictive_list(row.care_unit_id, write)
                    assign = flk_command(key, list_id, ListKind.FICTIVE, record, on)
                    events, rejected = self._decide(record, assign) if assign is not None else ([], None)
                if rejected is not None:
                    report.add_rejection(rejected, row.line, listing=False)
                    flk_rejected = True
                elif events:
                    decided.append((derived_id("listing.import.flk", key, list_id, on), events))
                    record = self._evolve(record, events)

        if not decided:
            if not flk_rejected:
                report.already_registered += 1
            return None
        return RowPlan(row, key, is_new, record, decided)

    def _accept(self, plan: RowPlan) -> None:
        """The row's decisions hold: the person's state, the counters (L7, F6) and the report move on."""
        report = self.report
        if plan.is_new:
            report.persons_created += 1
        self._live[plan.key] = (plan.record, False)
        for _, events in plan.decided:
            count_changes(events, self.register.listed, self.register.list_sizes)
            for e in events:
                if isinstance(e, ev.ListingStarted):
                    report.listings_started += 1
                elif isinstance(e, ev.FastLakarkontaktAssigned):
                    if e.list_kind is ListKind.FICTIVE:
                        report.fictive_assigned += 1
                    else:
                        report.named_assigned += 1

    async def _write(self, plan: RowPlan, repo: ListingRepository) -> int:
        """The row's rows, through the service's repository (``persist`` + ``add_outbox``); the
        number of outbox events."""
        if plan.is_new:
            await self._create_person(repo.conn, plan.record.person, plan.row.person)
        outbox = 0
        for message_id, events in plan.decided:
            ctx = DecisionContext(message_id=message_id, command_type="listing.import",
                                  decided_at=self.clock(), care_unit_id=plan.row.care_unit_id)
            published = await repo.persist(events, ctx)
            await repo.add_outbox(published, ctx.decided_at)
            outbox += len(published)
        return outbox

    async def _write_batch(self, plans: list[RowPlan]) -> int:
        """All plans of a chunk: statements are recorded and sent as one ``executemany`` per
        statement (persons first). A plan that ends something needs ``UPDATE … RETURNING`` answers:
        the batch so far is flushed and that plan runs directly."""
        recorder = StatementBatch(first=(PERSON_INSERT, IDENTITY_INSERT))
        batched = ListingRepository(recorder)
        outbox = 0
        for plan in plans:
            if any(isinstance(e, ENDING) for _, events in plan.decided for e in events):
                await recorder.flush(self.conn)
                outbox += await self._write(plan, self.repo)
            else:
                outbox += await self._write(plan, batched)
        await recorder.flush(self.conn)
        return outbox

    async def _create_person(self, conn: Any, person: Person, person_id: PersonId) -> None:
        await conn.execute(PERSON_INSERT, person.patient_key, person.home_region, person.birth_date,
                           person.sabo_resident)
        await conn.execute(IDENTITY_INSERT, person.patient_key, self.vault.seal(person.patient_key, person_id),
                           person_id.kind)


PERSON_INSERT = """INSERT INTO listing.person (patient_key, population_status, home_region, birth_date, sabo_resident)
VALUES ($1, 'folkbokford', $2, $3, $4) ON CONFLICT (patient_key) DO NOTHING"""
IDENTITY_INSERT = """INSERT INTO platform.person_identity (patient_key, person_id_ciphertext, id_kind)
VALUES ($1, $2, $3) ON CONFLICT (patient_key) DO NOTHING"""
ENDING = (ev.ListingEnded, ev.FastLakarkontaktEnded)


@dataclass
class RowPlan:
    """What one row decided (accepted events), before it is written."""

    row: ImportRow
    key: str
    is_new: bool
    record: PatientRecord  # the person's state after the row
    decided: list[tuple[str, list[ev.Event]]]


def birth_date_of(person: PersonId) -> date | None:
    """From a personnummer (YYYYMMDD…) or samordningsnummer (day + 60); None for reservnummer."""
    if person.kind == "reservnummer" or len(person.value) != 12:
        return None
    day = int(person.value[6:8])
    if person.kind == "samordningsnummer":
        day -= 60
    try:
        return date(int(person.value[:4]), int(person.value[4:6]), day)
    except ValueError:
        return None
