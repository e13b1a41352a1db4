"""In-memory fakes of the listing service's ports (the cosmicpython "fake unit of work"), so the real
handlers (services/listing/service_layer/handlers.py) run in unit tests without PostgreSQL.

``FakeListingRepository`` keeps the register as one domain ``ListingState`` and answers what
``ListingRepository`` answers from rows. Persisting decided events runs the production row writers
(adapters/event_writers.py: they give the contract events, with their ids, exactly as in production)
against the fake, then applies each event with the domain's ``evolve`` — so the fake's register moves
the way the rows do. SQL the writers hand to :meth:`FakeListingRepository.execute` is not run; only
the ids of inserted listings, assignments and appointments are remembered (the ``close_*`` answers).

``FakeUnitOfWork`` commits when its block ends normally and restores the register otherwise (a
rolled-back message leaves nothing behind, as a PostgreSQL transaction would).

The integration tests (tests/integration/listing) keep the real repository; what the fake does not
model (period triggers and exclusion constraints of the unit register, concurrency, the chunked
consumer) is tested there.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flk.events.envelope import derived_id
from services.listing.adapters.event_writers import (
    INSERT_ASSIGNMENT,
    INSERT_LISTING,
    WRITERS,
    DecisionContext,
    OutboxEvent,
)
from services.listing.adapters.reference import doctor_list_id
from services.listing.domain import events as ev
from services.listing.domain.evolve import evolve
from services.listing.domain.model import (
    LAKARE,
    CareUnit,
    DoctorList,
    EmploymentType,
    ListingLimit,
    ListingState,
    ListKind,
    PatientRecord,
    Period,
    Person,
    PopulationStatus,
    PractitionerRole,
    with_item,
)
from services.listing.service_layer.handlers import Deps
from tests.support.fake_unit_of_work import InMemoryUnitOfWork

INSERT_APPOINTMENT_PREFIX = "INSERT INTO listing.fast_vardkontakt ("


@dataclass
class InboxRow:
    message_type: str
    outcome: dict | None


class FakeListingRepository:
    """The listing register in memory, behind the same methods as ``ListingRepository``."""

    def __init__(self, state: ListingState | None = None) -> None:
        self.state = state or ListingState()
        self.inbox: dict[str, InboxRow] = {}
        self.outbox: list[OutboxEvent] = []
        self.residences: dict[str, dict] = {}
        self.risk_assessments: dict[str, dict] = {}
        self._ids: dict[tuple[str, ...], str] = {}

    # ------------------------------------------------------------------ rollback support
    def snapshot(self) -> dict[str, Any]:
        return {name: copy.copy(value) for name, value in vars(self).items()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        vars(self).update(snapshot)

    # ------------------------------------------------------------------ inbox / outbox
    async def inbox_outcome(self, message_id: str) -> dict | None | bool:
        row = self.inbox.get(message_id)
        return False if row is None else copy.deepcopy(row.outcome)

    async def record_inbox(self, message_id: str, message_type: str, outcome: dict | None) -> None:
        if message_id in self.inbox:  # the inbox's primary key
            raise AssertionError(f"inbox: message {message_id} recorded twice")
        self.inbox[message_id] = InboxRow(message_type, copy.deepcopy(outcome))

    async def add_outbox(self, events: Sequence[OutboxEvent], at: datetime) -> None:
        self.outbox.extend(events)

    # ------------------------------------------------------------------ loading
    async def lock_persons(self, keys: Iterable[str]) -> list[str]:
        return sorted(k for k in set(keys) if k in self.state.patients)

    async def load_patients(self, keys: Sequence[str], changes_since: date) -> dict[str, PatientRecord]:
        out = {}
        for key in keys:
            record = self.state.patients.get(key)
            if record is not None:
                out[key] = replace(record, changes=tuple(c for c in record.changes if c.on >= changes_since))
        return out

    async def load_units(self, hsa_ids: Iterable[str]) -> dict[str, CareUnit]:
        return {u: self.state.units[u] for u in sorted({u for u in hsa_ids if u}) if u in self.state.units}

    async def unit_family(self, hsa_id: str) -> list[str]:
        unit = self.state.units.get(hsa_id)
        main = unit.main_unit_id if unit is not None and unit.main_unit_id else hsa_id
        return sorted({main} | {u.hsa_id for u in self.state.units.values() if u.main_unit_id == main})

    async def lock_unit(self, hsa_id: str) -> None:
        return None

    async def listed_count(self, hsa_id: str) -> int:
        return sum(1 for r in self.state.patients.values()
                   if (lst := r.open_listing) is not None and lst.care_unit_id == hsa_id)

    def _list_size(self, list_id: str) -> int:
        return sum(1 for r in self.state.patients.values() for a in r.open_assignments if a.list_id == list_id)

    async def load_list(self, list_id: str, lock_role: bool = False
                        ) -> tuple[DoctorList | None, PractitionerRole | None, int]:
        doctor_list = self.state.lists.get(list_id)
        if doctor_list is None:
            return None, None, 0
        role = self.state.roles.get(doctor_list.role_id) if doctor_list.role_id else None
        return doctor_list, role, self._list_size(list_id)

    async def doctor_list_of(self, practitioner_id: str, care_unit_id: str, on: date) -> str | None:
        candidates = [
            (lst, role) for lst in self.state.lists.values() if lst.kind == ListKind.DOCTOR and lst.role_id
            for role in [self.state.roles.get(lst.role_id)]
            if role is not None and role.practitioner_id == practitioner_id and role.care_unit_id == care_unit_id
        ]
        if not candidates:
            return None
        candidates.sort(key=lambda c: (c[1].period.start <= on and (c[1].period.end is None or c[1].period.end > on),
                                       c[1].period.start), reverse=True)
        return candidates[0][0].list_id

    async def roles_of_practitioner(self, practitioner_id: str) -> list[PractitionerRole]:
        return [r for r in self.state.roles.values() if r.practitioner_id == practitioner_id]

    async def role_with_lists(self, role_id: str) -> tuple[PractitionerRole | None, list[DoctorList], list[str]]:
        role = self.state.roles.get(role_id)
        if role is None:
            return None, [], []
        lists = [lst for lst in self.state.lists.values() if lst.role_id == role_id]
        ids = {lst.list_id for lst in lists}
        keys = sorted(k for k, r in self.state.patients.items() if any(a.list_id in ids for a in r.open_assignments))
        return role, lists, keys

    async def consents_due(self, today: date, limit: int) -> list[tuple[str, str, date]]:
        due = [(p.expires_on, key, p.care_unit_id, p.requested_on) for key, r in self.state.patients.items()
               if (p := r.open_pending_listing) is not None and p.expires_on <= today]
        return [(key, unit, requested) for _, key, unit, requested in sorted(due)[:limit]]

    # ------------------------------------------------------------------ reference data (facts)
    async def upsert_role(self, data: dict) -> bool:
        role = PractitionerRole(
            role_id=data["role_id"], practitioner_id=data["practitioner_id"], care_unit_id=data["care_unit_id"],
            profession=data["profession"], legitimerad=data["legitimerad"],
            employment_type=EmploymentType(data["employment_type"]), specialty=data.get("specialty"),
            fte=Decimal(str(data["fte"])),
            period=Period(date.fromisoformat(data["valid_from"]),
                          date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None),
            individual_capacity=data.get("individual_capacity"),
        )
        self.state = replace(self.state, roles=with_item(self.state.roles, role.role_id, role))
        if data["profession"].strip().casefold() != LAKARE:
            return False
        name = (data.get("practitioner_name") or "").strip()
        bound = next((lst for lst in self.state.lists.values() if lst.role_id == role.role_id), None)
        if bound is not None:
            if name and bound.kind == ListKind.DOCTOR:
                self._put_list(replace(bound, display_name=name))
            return False
        unit = self.state.units.get(role.care_unit_id)
        display = name or (f"{unit.name} {role.practitioner_id}" if unit else role.practitioner_id)
        list_id = doctor_list_id(role.role_id)
        if list_id not in self.state.lists:
            self._put_list(DoctorList(list_id, role.care_unit_id, display, ListKind.DOCTOR, role.role_id))
        return True

    def _put_unit(self, unit: CareUnit) -> None:
        self.state = replace(self.state, units=with_item(self.state.units, unit.hsa_id, unit))

    def _put_list(self, doctor_list: DoctorList) -> None:
        self.state = replace(self.state, lists=with_item(self.state.lists, doctor_list.list_id, doctor_list))

    async def apply_unit_register(self, data: dict, recorded_on: date) -> None:
        """The latest fact is the unit's state; periods are only added or closed (a moved or reopened
        one raises ``ValueError``, as the real adapter does). Overlaps are the database's to refuse."""
        hsa_id = data["care_unit_id"]
        unit = replace(self.state.units.get(hsa_id) or CareUnit(hsa_id, "", ""), name=data["name"],
                       region=data["region_code"], verksamhetschef_hsa_id=data.get("verksamhetschef_id"),
                       main_unit_id=data.get("main_unit_id"))
        self._put_unit(unit)  # as the real adapter: the unit row first, then its periods
        old = unit
        contract = Period(date.fromisoformat(data["contract_from"]),
                          date.fromisoformat(data["contract_to"]) if data.get("contract_to") else None)
        contracts = _apply_period("unit_contract", old.contracts, contract, lambda p: p)
        limits = old.listing_limits
        if (limit := data.get("listing_limit")) is not None:
            period = Period(date.fromisoformat(limit["valid_from"]),
                            date.fromisoformat(limit["valid_to"]) if limit.get("valid_to") else None)
            new = ListingLimit(int(limit["max_listed"]), period, frozenset(limit.get("exempt_groups") or ()))
            limits = _apply_period("listing_limit", limits, new, lambda lim: lim.period)
        else:
            limits = tuple(replace(lim, period=lim.period.closed_at(recorded_on)) if lim.period.is_open else lim
                           for lim in limits)
        self._put_unit(replace(unit, contracts=contracts, listing_limits=limits))
        for fictive in data.get("fictive_lists") or ():
            if fictive["list_id"] not in self.state.lists:
                self._put_list(DoctorList(fictive["list_id"], hsa_id, fictive["name"], ListKind.FICTIVE, None))

    async def add_risk_assessment(self, data: dict) -> None:
        self.risk_assessments.setdefault(data["assessment_id"], dict(data))

    async def upsert_person(self, patient_key: str, *, population_status: str, home_region: str | None,
                            birth_date: date | None, status_date: date | None,
                            guardian_keys: list[str] | None = None) -> str | None:
        guardians = frozenset(guardian_keys) if guardian_keys is not None else None
        record = self.state.patients.get(patient_key)
        if record is None:
            person = Person(patient_key, PopulationStatus(population_status), home_region or "00", birth_date,
                            sabo_resident=await self.sabo_resident_on(patient_key, date.today()),
                            guardian_keys=guardians)
            self.state = self.state.with_patient(PatientRecord(person=person))
            return None
        old = record.person
        changes: dict[str, Any] = {}
        if home_region and home_region != old.home_region:
            changes["home_region"] = home_region
        if birth_date and birth_date != old.birth_date:
            changes["birth_date"] = birth_date
        if guardians is not None and guardians != old.guardian_keys:
            changes["guardian_keys"] = guardians
        if population_status == "folkbokford" and old.population_status != PopulationStatus.FOLKBOKFORD:
            changes["population_status"] = PopulationStatus.FOLKBOKFORD
        if changes:
            self.state = self.state.with_patient(replace(record, person=replace(old, **changes)))
        return old.population_status.value

    async def mark_protected_identity(self, patient_key: str) -> None:
        record = self.state.patients[patient_key]
        self.state = self.state.with_patient(replace(record, person=replace(record.person, protected_identity=True)))

    async def upsert_residence(self, data: dict) -> None:
        previous = self.residences.get(data["residence_id"])
        if previous is not None and previous["recorded_at"] > data["recorded_at"]:
            return  # an older fact of the period: the latest recorded wins
        self.residences[data["residence_id"]] = dict(data)

    async def sabo_resident_on(self, patient_key: str, on: date) -> bool:
        return any(
            r["patient_key"] == patient_key and date.fromisoformat(r["sabo_from"]) <= on
            and (not r.get("sabo_to") or on < date.fromisoformat(r["sabo_to"]))
            for r in self.residences.values()
        )

    # ------------------------------------------------------------------ writing decided events
    async def execute(self, sql: str, *args: Any) -> None:
        """The writers' SQL is not run (``evolve`` moves the register); inserted ids are remembered."""
        if sql is INSERT_LISTING:
            self._ids[("listing", args[1], args[2])] = args[0]
        elif sql is INSERT_ASSIGNMENT:
            self._ids[("assignment", args[1], args[2])] = args[0]
        elif sql.lstrip().startswith(INSERT_APPOINTMENT_PREFIX):
            self._ids[("appointment", args[1], args[2], args[3])] = args[0]

    def _id(self, *key: str) -> str:
        return self._ids.pop(key, None) or derived_id("fake.seeded", *key)

    async def close_listing(self, patient_key: str, care_unit_id: str, ended_on: date, reason: str) -> str | None:
        record = self.state.patients.get(patient_key)
        open_here = record is not None and any(
            lst.period.is_open and lst.care_unit_id == care_unit_id for lst in record.listings)
        return self._id("listing", patient_key, care_unit_id) if open_here else None

    async def close_assignment(self, patient_key: str, list_id: str, ended_on: date, reason: str) -> str | None:
        record = self.state.patients.get(patient_key)
        open_here = record is not None and any(a.list_id == list_id for a in record.open_assignments)
        return self._id("assignment", patient_key, list_id) if open_here else None

    async def close_fast_vardkontakt(self, patient_key: str, care_unit_id: str, practitioner_id: str, ended_on: date,
                                     reason: str) -> str | None:
        record = self.state.patients.get(patient_key)
        open_here = record is not None and any(
            v.care_unit_id == care_unit_id and v.practitioner_id == practitioner_id
            for v in record.open_fast_vardkontakter)
        return self._id("appointment", patient_key, care_unit_id, practitioner_id) if open_here else None

    async def persist(self, events: Sequence[ev.Event], ctx: DecisionContext) -> list[OutboxEvent]:
        """The production writers give the contract events; ``evolve`` applies each event after its
        writer ran (a writer sees the register as it was before its event, as the SQL does)."""
        out: list[OutboxEvent] = []
        for index, event in enumerate(events):
            writer = WRITERS.get(type(event))
            if writer is None:
                raise TypeError(f"no row mapping for {type(event).__name__}")
            published = await writer(self, event, ctx, index)  # type: ignore[arg-type]
            self.state = evolve(self.state, event)
            if published is not None:
                out.append(published)
        return out


def _apply_period(what: str, recorded: tuple, new: Any, period_of: Any) -> tuple:
    same = next((r for r in recorded if period_of(r).start == period_of(new).start), None)
    if same is None:
        return (*recorded, new)
    if period_of(same).end == period_of(new).end:
        return recorded
    if period_of(same).is_open and period_of(new).end is not None:
        return tuple(new if r is same else r for r in recorded)
    raise ValueError(f"{what}: a recorded period can only be closed, not moved or reopened")


class FakeUnitOfWork(InMemoryUnitOfWork):
    """``async with`` one message: committed when the block ends normally; otherwise the register is
    restored to what it was at the start (the real unit of work rolls the transaction back)."""

    def __init__(self, repo: FakeListingRepository) -> None:
        super().__init__()
        self.repo = repo

    def _snapshot(self) -> dict[str, Any]:
        return self.repo.snapshot()

    def _restore(self, before: dict[str, Any]) -> None:
        self.repo.restore(before)


@dataclass
class FakeListingService:
    """The real handlers' dependencies wired to the fakes: ``deps`` for a handler, the register
    (``repo``), its unit of work and what ``on_decided`` was told (the consumer's metrics hook)."""

    repo: FakeListingRepository
    uow: FakeUnitOfWork
    deps: Deps
    decided: list[tuple[Any, Any, list[ev.Event]]]


def fake_listing_service(state: ListingState | None = None, *, now: datetime, profile_name: str = "vastmanland",
                         timezone: str = "Europe/Stockholm") -> FakeListingService:
    """Every unit of work is the fake one, and there is no pool: nothing can reach a database."""
    repo = FakeListingRepository(state)
    uow = FakeUnitOfWork(repo)
    decided: list[tuple[Any, Any, list[ev.Event]]] = []
    deps = Deps(pool=None, profile_name=profile_name, timezone=timezone, clock=lambda: now,
                on_decided=lambda m, o, e: decided.append((m, o, e)), uow_factory=lambda: uow)
    return FakeListingService(repo, uow, deps, decided)
