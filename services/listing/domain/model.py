"""The state listing decisions read: plain frozen dataclasses an adapter can build from rows.

Conventions
-----------
* Every period is **half-open** ``[start, end)`` — the same as PostgreSQL's canonical
  ``daterange``. ``end`` is the first day the thing no longer applies; ``None`` means open.
  So when a new listing ends the old one "atomically", the old one's ``end`` equals the new
  one's ``start``: no overlap, no gap.
* History is kept: ending something closes its period, nothing is deleted (P1).
* No field anywhere holds a person's name or address (P2). Persons are known by a
  pseudonymous ``patient_key``; staff and units by HSA-id.
* Mappings inside the state are read-only (``MappingProxyType``); :func:`evolve` builds new ones.

What an adapter must load for one decision is described on :class:`ListingState`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from flk.dates import add_months

K = TypeVar("K")
V = TypeVar("V")


# --------------------------------------------------------------------------- vocabularies


class PopulationStatus(StrEnum):
    """Status in the population register (folkbokföringen), as the region sees it."""

    FOLKBOKFORD = "folkbokford"
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    MOVED_OUT_OF_REGION = "moved_out_of_region"


class ListingOrigin(StrEnum):
    ACTIVE_CHOICE = "active_choice"  # the person (or guardians) chose the unit
    NO_CHOICE_PLACEMENT = "no_choice_placement"  # placed because the person has not chosen
    ASSIGNED = "assigned"  # placed by the region (e.g. unit closed)
    IMPORT = "import"  # migrated from an earlier listing system (e.g. FLISA, seed 001)


class Channel(StrEnum):
    PORTAL_1177 = "1177"
    EHR = "ehr"
    ADMIN = "admin"
    IMPORT = "import"


class Initiator(StrEnum):
    PERSON = "person"
    REGION = "region"


class ExemptionReason(StrEnum):
    """Why a person-initiated change does not count toward the L5 limit."""

    SARSKILDA_SKAL = "sarskilda_skal"
    UNIT_CLOSED = "unit_closed"
    MOVED = "moved"


class EmploymentType(StrEnum):
    TILLSVIDARE = "tillsvidare"  # permanently employed ("fast anställd")
    ST_ALLMANMEDICIN = "st_allmanmedicin"  # ST-läkare in allmänmedicin
    HYR = "hyr"  # hyr-/stafettläkare
    KONSULT = "konsult"


class ListKind(StrEnum):
    DOCTOR = "doctor"  # a doctor's list, bound to a practitioner role (a named FLK)
    FICTIVE = "fictive"  # "<VC name> Dr X" (F3): not a named FLK


class ListingEndReason(StrEnum):
    """Values as in the contract ``schemas/events/listing.ended.v1.json``."""

    RELISTED = "relisted"
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    MOVED_OUT_OF_REGION = "moved_out_of_region"
    ENDED_BY_PATIENT = "ended_by_patient"
    ENDED_BY_REGION = "ended_by_region"
    UNIT_CLOSED = "unit_closed"


class FlkEndReason(StrEnum):
    """Values as in the contract ``schemas/events/fast_lakarkontakt.ended.v1.json``."""

    RELISTED = "relisted"  # F4: the person listed at another unit
    DOCTOR_LEFT = "doctor_left"  # F8
    DECEASED = "deceased"  # P1
    EMIGRATED = "emigrated"  # P1
    DECLINED = "declined"  # F7
    REPLACED = "replaced"  # another FLK took its place (single-FLK regions, fictive placeholder)
    LISTING_ENDED = "listing_ended"  # the listing ended without a new one (also: moved out of region)
    ENDED_BY_PATIENT = "ended_by_patient"
    ENDED_BY_UNIT = "ended_by_unit"  # e.g. list reduction decided by the verksamhetschef


class GuardianDecision(StrEnum):
    """P3: what a guardian answers to a pending listing request (``listing.consent.v1``)."""

    CONSENT = "consent"
    REFUSE = "refuse"


class ConsentOutcome(StrEnum):
    """P3: how a pending listing request ended (``listing.consent_closed.v1``)."""

    CONSENTED = "consented"  # every guardian consented and the listing decision accepted it
    REJECTED = "rejected"  # every guardian consented, but a listing rule rejected it on the consent's date
    REFUSED = "refused"  # a guardian refused (or the requesting guardian withdrew)
    EXPIRED = "expired"  # no consent within p3_consent_wait_days
    SUPERSEDED = "superseded"  # a newer listing request for the child replaced it
    CANCELLED = "cancelled"  # the child left the population (death, emigration, moved out of the region)


class FastVardkontaktEndReason(StrEnum):
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    MOVED_OUT_OF_REGION = "moved_out_of_region"
    ENDED_BY_PATIENT = "ended_by_patient"
    ENDED_BY_UNIT = "ended_by_unit"


# Specialties the rules read (free codes are allowed; these are the ones with meaning here).
ALLMANMEDICIN = "allmanmedicin"
GERIATRIK = "geriatrik"
PEDIATRIK = "pediatrik"
LAKARE = "läkare"


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class Period:
    """Half-open date interval ``[start, end)``; ``end=None`` is open-ended."""

    start: date
    end: date | None = None

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")

    def contains(self, on: date) -> bool:
        return self.start <= on and (self.end is None or on < self.end)

    @property
    def is_open(self) -> bool:
        return self.end is None

    def closed_at(self, end: date) -> Period:
        return Period(self.start, max(end, self.start))


def frozen_map(items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> Mapping[K, V]:
    """A read-only copy of a mapping."""
    return MappingProxyType(dict(items))


def with_item(mapping: Mapping[K, V], key: K, value: V) -> Mapping[K, V]:
    """A read-only copy of ``mapping`` with ``key`` set to ``value``."""
    copy = dict(mapping)
    copy[key] = value
    return MappingProxyType(copy)


def months_before(on: date, months: int) -> date:
    """The same day ``months`` months earlier, clamped to the month's last day (29 Feb → 28 Feb)."""
    return add_months(on, -months)


def age_in_years(birth_date: date, on: date) -> int:
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True, slots=True)
class Person:
    """A person as the population register and the EHR describe them — ids and flags only (P2).

    ``home_region`` is the region the person is folkbokförd in (a region code). There is
    deliberately no address, municipality or coordinate: L2 forbids geographic restriction,
    and P2 forbids addresses.
    """

    patient_key: str
    population_status: PopulationStatus
    home_region: str
    birth_date: date | None = None  # needed for minors (P3), newborns (L7) and F2 patient groups
    protected_identity: bool = False  # skyddad folkbokföring / sekretessmarkering (P2)
    sabo_resident: bool = False  # "Hemsjukvård SÄBO" (seed 001)
    # P3: the child's vårdnadshavare as the population register states them (pseudonymous patient
    # keys). None: the register has said nothing about guardianship (the command's guardian_count is
    # then used, as before); an empty set: the register states that the person has no guardian.
    guardian_keys: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ListingLimit:
    """A decided listing limit for a unit (L7)."""

    max_listed: int
    period: Period
    exempt_groups: frozenset[str] = frozenset()  # e.g. {"newborn", "sabo"}


@dataclass(frozen=True, slots=True)
class CareUnit:
    """A vårdcentral. ``contracts`` are the periods it is run by, or under contract with, its region (L3)."""

    hsa_id: str
    name: str
    region: str
    contracts: tuple[Period, ...] = ()
    listing_limits: tuple[ListingLimit, ...] = ()
    verksamhetschef_hsa_id: str | None = None  # V1: who may appoint a fast vårdkontakt
    main_unit_id: str | None = None  # a filial (underenhet, seed 004): its main unit

    def has_contract_on(self, on: date) -> bool:
        return any(p.contains(on) for p in self.contracts)

    def listing_limit_on(self, on: date) -> ListingLimit | None:
        return next((lim for lim in self.listing_limits if lim.period.contains(on)), None)


@dataclass(frozen=True, slots=True)
class PractitionerRole:
    """A doctor's (or other professional's) engagement at one unit."""

    role_id: str
    practitioner_id: str
    care_unit_id: str
    profession: str  # Swedish title; "läkare" for doctors
    legitimerad: bool  # F1
    employment_type: EmploymentType
    specialty: str | None  # "allmanmedicin", "geriatrik", "pediatrik", ...
    fte: Decimal  # 1 = full time
    period: Period
    individual_capacity: int | None = None  # F6: individually agreed list size (ST, seed 001)

    def is_active_on(self, on: date) -> bool:
        return self.period.contains(on)


@dataclass(frozen=True, slots=True)
class DoctorList:
    """A list at a unit. Kept apart from the doctor: a list outlives its doctor.

    A doctor list (kind ``doctor``: a *named* FLK) is bound to a practitioner role, which may
    have ended: the list is then vacant until a successor's role is bound to it. A fictive list
    (F3, kind ``fictive``) is called ``"<unit name> Dr X"`` and is not an FLK; its ``role_id``
    may point at the locum whose patients it holds.
    """

    list_id: str
    care_unit_id: str
    display_name: str
    kind: ListKind
    role_id: str | None = None


def fictive_list_display_name(unit_name: str, label: str) -> str:
    """Seed 001: a fictive list is named after the unit first, then the locum: ``"<VC> Dr X"``."""
    return f"{unit_name} Dr {label}"


def is_valid_fictive_list_name(lst: DoctorList, unit: CareUnit) -> bool:
    return lst.kind is ListKind.FICTIVE and lst.display_name.startswith(f"{unit.name} Dr ")


# --------------------------------------------------------------------------- a person's records


@dataclass(frozen=True, slots=True)
class Listing:
    """A listing of the person at a unit. ``period.start`` is when responsibility starts (L6)."""

    care_unit_id: str
    registered_on: date
    period: Period
    origin: ListingOrigin
    channel: Channel
    initiated_by: Initiator
    exemption_reason: ExemptionReason | None = None
    end_reason: ListingEndReason | None = None


@dataclass(frozen=True, slots=True)
class ListingChange:
    """One change of vårdcentral (for L5). Facts only; whether it counts is decided by the policy."""

    on: date
    from_care_unit_id: str
    to_care_unit_id: str
    initiated_by: Initiator
    origin: ListingOrigin
    exemption_reason: ExemptionReason | None = None


@dataclass(frozen=True, slots=True)
class FlkAssignment:
    """The person on a list (a fast läkarkontakt, or a fictive-list placement)."""

    list_id: str
    care_unit_id: str
    list_kind: ListKind
    practitioner_id: str | None
    coordinating: bool
    period: Period
    end_reason: FlkEndReason | None = None


@dataclass(frozen=True, slots=True)
class FlkDecline:
    """F7: the person declined an FLK at a unit; open until an FLK is assigned or the listing ends."""

    care_unit_id: str
    period: Period


@dataclass(frozen=True, slots=True)
class FastVardkontakt:
    """V1: a named contact of any profession, appointed by the verksamhetschef."""

    practitioner_id: str
    profession: str
    care_unit_id: str
    appointed_by_hsa_id: str
    period: Period
    end_reason: FastVardkontaktEndReason | None = None


@dataclass(frozen=True, slots=True)
class FastVardkontaktRequest:
    """V1: the patient asked for a fast vårdkontakt — a task for the verksamhetschef."""

    care_unit_id: str
    requested_on: date
    fulfilled_on: date | None = None


@dataclass(frozen=True, slots=True)
class PendingListing:
    """P3: a guardian's request to list a minor, waiting for the other guardian's consent.

    It holds what the request asked for, so the ordinary listing decision can run on the consent's
    date. ``expires_on`` is the first day it is no longer open for consent (half-open, like periods).
    A child has at most one open pending request.
    """

    care_unit_id: str
    requested_on: date
    expires_on: date
    consented_guardian_keys: frozenset[str]
    awaiting_guardian_keys: frozenset[str]
    origin: ListingOrigin
    channel: Channel
    initiated_by: Initiator
    exemption_reason: ExemptionReason | None = None
    residency_exception: str | None = None
    closed_on: date | None = None
    outcome: ConsentOutcome | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_on is None


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Everything the listing domain keeps about one person."""

    person: Person
    listings: tuple[Listing, ...] = ()
    changes: tuple[ListingChange, ...] = ()
    assignments: tuple[FlkAssignment, ...] = ()
    declines: tuple[FlkDecline, ...] = ()
    fast_vardkontakter: tuple[FastVardkontakt, ...] = ()
    fast_vardkontakt_requests: tuple[FastVardkontaktRequest, ...] = ()
    pending_listings: tuple[PendingListing, ...] = ()

    @property
    def patient_key(self) -> str:
        return self.person.patient_key

    @property
    def open_listing(self) -> Listing | None:
        return next((lst for lst in reversed(self.listings) if lst.period.is_open), None)

    @property
    def last_listing(self) -> Listing | None:
        return max(self.listings, key=lambda lst: lst.registered_on, default=None)

    @property
    def open_assignments(self) -> tuple[FlkAssignment, ...]:
        return tuple(a for a in self.assignments if a.period.is_open)

    @property
    def open_declines(self) -> tuple[FlkDecline, ...]:
        return tuple(d for d in self.declines if d.period.is_open)

    @property
    def open_fast_vardkontakter(self) -> tuple[FastVardkontakt, ...]:
        return tuple(v for v in self.fast_vardkontakter if v.period.is_open)

    @property
    def open_pending_listing(self) -> PendingListing | None:
        return next((p for p in reversed(self.pending_listings) if p.is_open), None)


# --------------------------------------------------------------------------- the decision state


@dataclass(frozen=True, slots=True)
class ListingState:
    """The slice of the world one decision reads.

    An adapter builds it from rows; for a command about one person it needs:

    * ``patients[patient_key]`` — the person, their open listing, their *last* listing (to
      know whether a new one is a change), their ``changes`` of the last 12 months (L5),
      open FLK assignments, declines and fast vårdkontakter. Closed history may be omitted.
    * ``units`` — the target unit (RequestListing) or the list's unit (FLK commands).
    * ``lists`` and ``roles`` — the list named in an FLK command and its role.
    * ``listed_count_by_unit[unit]`` — active listings at the target unit (L7).
    * ``list_size_by_list[list]`` — active assignments on the list (F6).

    For ``RecordPractitionerRoleEnded`` (F8) it needs the role, the lists bound to it and every
    patient with an open assignment on those lists.
    """

    patients: Mapping[str, PatientRecord] = field(default_factory=frozen_map)
    units: Mapping[str, CareUnit] = field(default_factory=frozen_map)
    roles: Mapping[str, PractitionerRole] = field(default_factory=frozen_map)
    lists: Mapping[str, DoctorList] = field(default_factory=frozen_map)
    listed_count_by_unit: Mapping[str, int] = field(default_factory=frozen_map)
    list_size_by_list: Mapping[str, int] = field(default_factory=frozen_map)

    def __post_init__(self) -> None:
        for name in (
            "patients",
            "units",
            "roles",
            "lists",
            "listed_count_by_unit",
            "list_size_by_list",
        ):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, frozen_map(value))

    @classmethod
    def build(
        cls,
        *,
        persons: Iterable[Person] = (),
        patients: Iterable[PatientRecord] = (),
        units: Iterable[CareUnit] = (),
        roles: Iterable[PractitionerRole] = (),
        lists: Iterable[DoctorList] = (),
        listed_count_by_unit: Mapping[str, int] | None = None,
        list_size_by_list: Mapping[str, int] | None = None,
    ) -> ListingState:
        """Build a state from records; counts default to what the given records imply."""
        records = {p.patient_key: PatientRecord(person=p) for p in persons}
        records.update({r.patient_key: r for r in patients})
        if listed_count_by_unit is None:
            counts: dict[str, int] = {}
            for r in records.values():
                if (lst := r.open_listing) is not None:
                    counts[lst.care_unit_id] = counts.get(lst.care_unit_id, 0) + 1
            listed_count_by_unit = counts
        if list_size_by_list is None:
            sizes: dict[str, int] = {}
            for r in records.values():
                for a in r.open_assignments:
                    sizes[a.list_id] = sizes.get(a.list_id, 0) + 1
            list_size_by_list = sizes
        return cls(
            patients=records,
            units={u.hsa_id: u for u in units},
            roles={r.role_id: r for r in roles},
            lists={lst.list_id: lst for lst in lists},
            listed_count_by_unit=listed_count_by_unit,
            list_size_by_list=list_size_by_list,
        )

    def with_patient(self, record: PatientRecord) -> ListingState:
        return replace(self, patients=with_item(self.patients, record.patient_key, record))
