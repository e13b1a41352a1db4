"""Checks for migrating a region's listing extract into the register (``flk listing import``).

Pure: no I/O. The service layer (``service_layer/importer.py``) reads the file twice — once to
check every row and build the per-person index (:class:`PersonIndex`), once to import — and
feeds each row through :func:`classify_row`; what is imported still goes through the domain's
``decide()`` (the importer turns each row into ``RequestListing`` / ``AssignFastLakarkontakt``
commands with :func:`listing_command` and :func:`flk_command`).

The extract (a CSV file, ``,`` or ``;`` separated, UTF-8, an optional header row):

=================  =====================================================================
column             meaning
=================  =====================================================================
``person_id``      personnummer or samordningsnummer (10 or 12 digits, ``-``/``+`` allowed)
``care_unit_id``   HSA-id of the unit the person is listed at
``practitioner_id`` HSA-id of the person's fast läkarkontakt at that unit (may be empty)
``employment_type`` the doctor's employment type: ``tillsvidare`` (also ``fast``),
                   ``st_allmanmedicin`` (also ``st``), ``hyr``, ``stafett``, ``konsult``;
                   empty = take it from the roster
=================  =====================================================================

Without a header the columns are taken in that order; with one, by name (extra columns are
ignored). Row numbers in reports are the file's line numbers (the header is line 1).

Violations never carry a person id: a report says *which line*, never *who* (P2).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from flk.security.pseudonym import InvalidPersonId, PersonId, parse_person_id

from . import commands as cmd
from . import events as ev
from .capacity import assess
from .model import (
    Channel,
    DoctorList,
    EmploymentType,
    Initiator,
    ListingOrigin,
    ListKind,
    PatientRecord,
    PractitionerRole,
)
from .policy import PolicyProfile
from .reasons import RejectionReason, RuleId

# --------------------------------------------------------------------------- the rows' vocabulary

#: spellings of the doctor's employment type in extracts -> the register's value
EMPLOYMENT_ALIASES: Mapping[str, EmploymentType] = {
    "tillsvidare": EmploymentType.TILLSVIDARE, "fast": EmploymentType.TILLSVIDARE,
    "fast_anstalld": EmploymentType.TILLSVIDARE, "fast anställd": EmploymentType.TILLSVIDARE,
    "st_allmanmedicin": EmploymentType.ST_ALLMANMEDICIN, "st": EmploymentType.ST_ALLMANMEDICIN,
    "st-läkare": EmploymentType.ST_ALLMANMEDICIN, "st_lakare": EmploymentType.ST_ALLMANMEDICIN,
    "hyr": EmploymentType.HYR, "hyrläkare": EmploymentType.HYR, "hyrlakare": EmploymentType.HYR,
    "stafett": EmploymentType.HYR, "stafettläkare": EmploymentType.HYR, "stafettlakare": EmploymentType.HYR,
    "konsult": EmploymentType.KONSULT, "konsultläkare": EmploymentType.KONSULT,
    "konsultlakare": EmploymentType.KONSULT,
}

LOCUM_TYPES = frozenset({EmploymentType.HYR, EmploymentType.KONSULT})
FICTIVE_LABEL = "X"  # seed 001: "<VC> Dr X"



# --------------------------------------------------------------------------- what can be wrong


class Outcome(str, Enum):
    """What happens to a row with the violation."""

    SKIPPED = "row not imported"
    LISTING_ONLY = "listing imported, no fast läkarkontakt"
    FICTIVE = "listing imported, patient on the unit's fictive list"
    WARNING = "imported (warning)"
    IGNORED = "ignored (nothing new)"


class Violation(Enum):
    """A kind of problem in an extract: its rule id (None when no listing rule applies), what happens
    to the row, and an explanation for the listing administrator (sv, en). Fixed texts, no values."""

    rule_id: RuleId | None
    outcome: Outcome
    message_sv: str
    message_en: str

    def __new__(cls, code: str, rule_id: RuleId | None, outcome: Outcome, sv: str, en: str) -> Violation:
        member = object.__new__(cls)
        member._value_ = code
        member.rule_id = rule_id
        member.outcome = outcome
        member.message_sv = sv
        member.message_en = en
        return member

    INVALID_PERSON_ID = (
        "invalid_person_id", None, Outcome.SKIPPED,
        "Inte ett giltigt personnummer eller samordningsnummer (numret skrivs aldrig ut).",
        "Not a valid personnummer or samordningsnummer (the number is never printed).",
    )
    MALFORMED_ROW = (
        "malformed_row", None, Outcome.SKIPPED,
        "Raden saknar vårdenhetens HSA-id eller har för få kolumner.",
        "The row lacks the unit's HSA-id or has too few columns.",
    )
    UNKNOWN_UNIT = (
        "unknown_unit", RuleId.L3, Outcome.SKIPPED,
        "Vårdenheten finns inte i registret. Läs in regionens vårdenhetsregister (region.care-units.v1) först.",
        "The care unit is not in the register. Load the region's unit register (region.care-units.v1) first.",
    )
    SEVERAL_LISTINGS = (
        "several_listings", RuleId.L1, Outcome.SKIPPED,
        "Personen är listad på mer än en vårdenhet i filen. Ingen av raderna läses in; enheterna måste "
        "rensa sina listor.",
        "The person is listed at more than one unit in the file. None of the rows is imported; the units "
        "must clean their lists.",
    )
    LISTED_ELSEWHERE = (
        "listed_elsewhere_in_register", RuleId.L1, Outcome.SKIPPED,
        "Registret listar redan personen på en annan vårdenhet; den listningen ändras inte av en import.",
        "The register already lists the person at another unit; an import does not change that listing.",
    )
    AWAITING_GUARDIAN_CONSENT = (
        "guardian_consent_pending_in_register", RuleId.P3, Outcome.SKIPPED,
        "I registret väntar en vårdnadshavares begäran om att lista barnet på den andra vårdnadshavarens "
        "samtycke. En import avgör inte begäran: den avslutas med samtycke, vägran eller när tiden gått ut. "
        "Importera raden igen därefter.",
        "In the register a guardian's request to list the child waits for the other guardian's consent. An "
        "import does not decide it: it ends with a consent, a refusal or its expiry. Import the row again "
        "after that.",
    )
    LOCUM_AS_FLK = (
        "locum_as_flk", RuleId.F2, Outcome.FICTIVE,
        "Hyr-, stafett- och konsultläkare får inte vara fast läkarkontakt enligt regionens profil. Patienterna "
        "hör hemma på enhetens fiktiva lista \"<vårdcentral> Dr X\" (visas inte på 1177).",
        "Hired, stafett and consultant locums may not be fast läkarkontakt under the region's profile. Their "
        "patients belong on the unit's fictive list \"<unit> Dr X\" (not shown on 1177).",
    )
    LOCUM_NO_FICTIVE_LIST = (
        "locum_as_flk_no_fictive_lists", RuleId.F2, Outcome.LISTING_ONLY,
        "Hyr-, stafett- och konsultläkare får inte vara fast läkarkontakt, och profilen använder inga fiktiva "
        "listor: personen listas utan fast läkarkontakt.",
        "Locums may not be fast läkarkontakt and the profile uses no fictive lists: the person is listed "
        "without a fast läkarkontakt.",
    )
    UNKNOWN_DOCTOR = (
        "unknown_doctor", RuleId.F4, Outcome.LISTING_ONLY,
        "Läkaren finns inte med en lista på vårdenheten (roster.practitioner-roles.v1). Personen listas utan "
        "fast läkarkontakt.",
        "The doctor has no list at the unit (roster.practitioner-roles.v1). The person is listed without a "
        "fast läkarkontakt.",
    )
    UNKNOWN_EMPLOYMENT_TYPE = (
        "unknown_employment_type", None, Outcome.LISTING_ONLY,
        "Okänd anställningsform (tillsvidare, st_allmanmedicin, hyr, stafett, konsult). Personen listas utan "
        "fast läkarkontakt.",
        "Unknown employment type (tillsvidare, st_allmanmedicin, hyr, stafett, konsult). The person is "
        "listed without a fast läkarkontakt.",
    )
    SEVERAL_FLK = (
        "several_fast_lakarkontakter", RuleId.F5, Outcome.LISTING_ONLY,
        "Personen har fler fasta läkarkontakter i filen än profilen tillåter. Personen listas utan fast "
        "läkarkontakt; enheten väljer en.",
        "The person has more fast läkarkontakter in the file than the profile allows. The person is listed "
        "without one; the unit chooses.",
    )
    OVER_CAPACITY = (
        "over_capacity", RuleId.F6, Outcome.WARNING,
        "Listan är större än kapaciteten (1 100 × tjänstgöringsgrad, ST 550 × tjänstgöringsgrad, eller "
        "individuellt avtalat antal). Varning, inget stopp.",
        "The list is larger than its capacity (1 100 × FTE, ST 550 × FTE, or an individually agreed number). "
        "A warning, not a block.",
    )
    DUPLICATE_ROW = (
        "duplicate_row", None, Outcome.IGNORED,
        "Samma person, vårdenhet och läkare som en tidigare rad.",
        "Same person, unit and doctor as an earlier row.",
    )


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class DoctorOnList:
    """A doctor's list at a unit, with the role it is bound to."""

    list_id: str
    role: PractitionerRole


@dataclass(frozen=True)
class ImportReference:
    """What the import reads from the register: units (L3), the doctor lists by (doctor, unit)
    and every list with its role (for decide and F6)."""

    unit_ids: frozenset[str]
    doctors: Mapping[tuple[str, str], DoctorOnList] = field(default_factory=dict)


def doctors_by_unit(lists: Sequence[DoctorList], roles: Mapping[str, PractitionerRole], on: date
                    ) -> dict[tuple[str, str], DoctorOnList]:
    """(practitioner HSA-id, unit) -> the doctor list bound to their role there; a role active on
    ``on`` wins over an ended one, then the latest start (as the service resolves a practitioner)."""
    best: dict[tuple[str, str], DoctorOnList] = {}
    for lst in lists:
        role = roles.get(lst.role_id) if lst.role_id else None
        if lst.kind is not ListKind.DOCTOR or role is None or role.care_unit_id != lst.care_unit_id:
            continue
        key = (role.practitioner_id, lst.care_unit_id)
        current = best.get(key)
        rank = (role.is_active_on(on), role.period.start)
        if current is None or rank > (current.role.is_active_on(on), current.role.period.start):
            best[key] = DoctorOnList(lst.list_id, role)
    return best


# --------------------------------------------------------------------------- one row


class Target(str, Enum):
    NONE = "none"  # listing only
    NAMED = "named"  # the doctor's list (a named FLK)
    FICTIVE = "fictive"  # the unit's fictive list (F3)


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A usable row: ``person`` never printed (PersonId redacts itself)."""

    line: int
    person: PersonId
    care_unit_id: str
    target: Target
    list_id: str | None = None  # the named list when target is NAMED


@dataclass(frozen=True, slots=True)
class RowCheck:
    row: ImportRow | None  # None: the row cannot be imported at all
    violations: tuple[Violation, ...] = ()


def _field(fields: Sequence[str], columns: Mapping[str, int], name: str) -> str:
    index = columns.get(name)
    if index is None or index >= len(fields):
        return ""
    return fields[index].strip()


def classify_row(
    line: int,
    fields: Sequence[str],
    columns: Mapping[str, int],
    reference: ImportReference,
    policy: PolicyProfile,
    on: date,
    reservnummer_pattern: str | None = None,
) -> RowCheck:
    """Row-level checks: the id, the unit (L3), the doctor (F4) and their eligibility (F2).

    Which list the person goes on: the doctor's list; the unit's fictive list when the doctor is a
    locum the profile does not accept as FLK (F2, F3); none when there is no doctor or it is unknown.
    """
    unit_id = _field(fields, columns, "care_unit_id")
    raw_id = _field(fields, columns, "person_id")
    if not unit_id or not raw_id:
        return RowCheck(None, (Violation.MALFORMED_ROW,))
    try:
        person = parse_person_id(raw_id, reservnummer_pattern, today=on)
    except InvalidPersonId:
        return RowCheck(None, (Violation.INVALID_PERSON_ID,))
    if unit_id not in reference.unit_ids:
        return RowCheck(None, (Violation.UNKNOWN_UNIT,))

    practitioner = _field(fields, columns, "practitioner_id")
    if not practitioner:
        return RowCheck(ImportRow(line, person, unit_id, Target.NONE))
    raw_type = _field(fields, columns, "employment_type").casefold()
    employment: EmploymentType | None = None
    if raw_type:
        employment = EMPLOYMENT_ALIASES.get(raw_type)
        if employment is None:
            return RowCheck(ImportRow(line, person, unit_id, Target.NONE), (Violation.UNKNOWN_EMPLOYMENT_TYPE,))
    doctor = reference.doctors.get((practitioner, unit_id))
    if employment is None and doctor is not None:
        employment = doctor.role.employment_type  # not in the extract: the roster's
    if employment in LOCUM_TYPES and employment not in policy.f2_allowed_employment_types:
        if policy.f3_fictive_lists_enabled:
            return RowCheck(ImportRow(line, person, unit_id, Target.FICTIVE), (Violation.LOCUM_AS_FLK,))
        return RowCheck(ImportRow(line, person, unit_id, Target.NONE), (Violation.LOCUM_NO_FICTIVE_LIST,))
    if doctor is None:
        return RowCheck(ImportRow(line, person, unit_id, Target.NONE), (Violation.UNKNOWN_DOCTOR,))
    return RowCheck(ImportRow(line, person, unit_id, Target.NAMED, doctor.list_id))


# --------------------------------------------------------------------------- across rows


@dataclass(slots=True)
class _PersonEntry:
    first_line: int
    last_line: int
    unit: str
    targets: tuple[tuple[Target, str | None], ...]
    named_lines: tuple[int, ...] = ()
    several_units: bool = False
    several_flk: bool = False


@dataclass(frozen=True, slots=True)
class PersonVerdict:
    import_listing: bool  # False: L1 conflict in the file
    import_flk: bool  # False: F5 conflict in the file
    last_line: int  # the person's last row (the importer may forget the person after it)


def _person_key(person: PersonId) -> int | str:
    """A compact in-memory key (12-digit ids as int); never printed."""
    return int(person.value) if person.value.isdigit() else f"{person.kind}:{person.value}"


class PersonIndex:
    """One compact entry per person in the file: finds several listings (L1), several FLKs (F5)
    and duplicate rows. Memory grows with the number of persons, never with rows: a person seen
    once (the common case) is one packed int (line, unit, list); a second row expands it."""

    def __init__(self, policy: PolicyProfile) -> None:
        self._max_flk = policy.f5_max_fast_lakarkontakter
        self._entries: dict[int | str, int | _PersonEntry] = {}
        self._units: dict[str, int] = {}
        self._unit_names: list[str] = []
        self._targets: dict[tuple[Target, str | None], int] = {}
        self._target_list: list[tuple[Target, str | None]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def _pack(self, row: ImportRow) -> int:
        unit = self._units.get(row.care_unit_id)
        if unit is None:
            unit = self._units[row.care_unit_id] = len(self._unit_names)
            self._unit_names.append(row.care_unit_id)
        target_key = (row.target, row.list_id)
        target = self._targets.get(target_key)
        if target is None:
            target = self._targets[target_key] = len(self._target_list)
            self._target_list.append(target_key)
        return (row.line << 40) | (unit << 20) | target

    def _expand(self, packed: int) -> _PersonEntry:
        line, unit, target = packed >> 40, (packed >> 20) & 0xFFFFF, packed & 0xFFFFF
        target_key = self._target_list[target]
        named = (line,) if target_key[0] is Target.NAMED else ()
        return _PersonEntry(line, line, self._unit_names[unit], (target_key,), named)

    def observe(self, row: ImportRow) -> list[tuple[Violation, tuple[int, ...], bool]]:
        """Record a row. Returns (violation, lines, new_person_in_conflict) — lines may include
        earlier rows of the person that only now turn out to conflict."""
        key = _person_key(row.person)
        found = self._entries.get(key)
        if found is None:
            self._entries[key] = self._pack(row)
            return []
        entry = self._expand(found) if isinstance(found, int) else found
        self._entries[key] = entry
        target = (row.target, row.list_id)
        entry.last_line = row.line
        if entry.several_units:
            return [(Violation.SEVERAL_LISTINGS, (row.line,), False)]
        if row.care_unit_id != entry.unit:
            entry.several_units = True
            return [(Violation.SEVERAL_LISTINGS, (entry.first_line, row.line), True)]
        if target in entry.targets:
            return [(Violation.DUPLICATE_ROW, (row.line,), False)]
        entry.targets += (target,)
        if row.target is not Target.NAMED:
            return []
        entry.named_lines += (row.line,)
        if self._max_flk is None or len(entry.named_lines) <= self._max_flk:
            return []
        if entry.several_flk:
            return [(Violation.SEVERAL_FLK, (row.line,), False)]
        entry.several_flk = True
        return [(Violation.SEVERAL_FLK, entry.named_lines, True)]

    def verdict(self, person: PersonId) -> PersonVerdict:
        found = self._entries[_person_key(person)]
        if isinstance(found, int):
            return PersonVerdict(True, True, found >> 40)
        return PersonVerdict(not found.several_units, not found.several_flk, found.last_line)


# --------------------------------------------------------------------------- commands


def listing_command(patient_key: str, row: ImportRow, record: PatientRecord, on: date
                    ) -> cmd.RequestListing | Violation | None:
    """The listing the row asks for: None when the register already lists the person at the unit
    (re-import is a no-op), ``LISTED_ELSEWHERE`` when it lists them at another unit,
    ``AWAITING_GUARDIAN_CONSENT`` when a guardian's request for the child waits in the register (P3).

    P3 and the import. The extract is the source register's listings, made under its own consent
    checks, and carries no consents; the row is a region placement (``initiated_by`` region), to
    which P3 does not apply — a minor's listing is imported like anyone's, whatever the population
    register says of the guardians (re-checking would drop every child from the register at the
    migration, with nobody to ask). What the import does not do is decide a request that waits for a
    guardian in this register: a placement would close it ``superseded`` and the guardians' answer
    would go unheard, so the row is skipped with its reason until the request has closed."""
    current = record.open_listing
    if current is not None:
        return None if current.care_unit_id == row.care_unit_id else Violation.LISTED_ELSEWHERE
    if record.open_pending_listing is not None:
        return Violation.AWAITING_GUARDIAN_CONSENT
    return cmd.RequestListing(
        patient_key=patient_key,
        care_unit_id=row.care_unit_id,
        effective_date=on,
        initiated_by=Initiator.REGION,
        channel=Channel.IMPORT,
        origin=ListingOrigin.IMPORT,
    )


def flk_command(patient_key: str, list_id: str, kind: ListKind, record: PatientRecord, on: date
                ) -> cmd.AssignFastLakarkontakt | None:
    """The assignment to ``list_id``, or None when nothing is to do: already on it, or (for a fictive
    placement) already on any list at the unit — a named FLK is never replaced by a fictive list."""
    open_now = record.open_assignments
    if any(a.list_id == list_id for a in open_now):
        return None
    listing = record.open_listing
    if kind is ListKind.FICTIVE and listing is not None and any(
            a.care_unit_id == listing.care_unit_id for a in open_now):
        return None
    return cmd.AssignFastLakarkontakt(patient_key=patient_key, list_id=list_id, effective_date=on)


# --------------------------------------------------------------------------- F6 after the import


@dataclass(frozen=True, slots=True)
class OverCapacity:
    list_id: str
    care_unit_id: str
    practitioner_id: str
    list_size: int
    capacity: int
    basis: str  # individual | specialist_benchmark (1 100 × FTE) | st_benchmark (550 × FTE)
    fte: str

    def as_json(self) -> dict[str, Any]:
        return {"list_id": self.list_id, "care_unit_id": self.care_unit_id, "practitioner_id": self.practitioner_id,
                "list_size": self.list_size, "capacity": self.capacity, "basis": self.basis, "fte": self.fte}


def over_capacity(list_sizes: Mapping[str, int], lists: Mapping[str, DoctorList],
                  roles: Mapping[str, PractitionerRole], policy: PolicyProfile) -> list[OverCapacity]:
    """F6: named lists whose size is above capacity (fictive lists have none)."""
    found = []
    for list_id in sorted(list_sizes):
        lst = lists.get(list_id)
        role = roles.get(lst.role_id) if lst is not None and lst.role_id else None
        if lst is None or lst.kind is not ListKind.DOCTOR or role is None:
            continue
        a = assess(list_sizes[list_id], role, policy)
        if a.above_capacity:
            found.append(OverCapacity(list_id, lst.care_unit_id, role.practitioner_id, a.list_size,
                                      a.capacity.patients, a.capacity.basis.value, str(role.fte)))
    return found


def count_changes(events: Sequence[ev.Event], listed: dict[str, int], sizes: dict[str, int]) -> None:
    """Keep the running unit (L7) and list (F6) counters in step with accepted events."""
    for e in events:
        if isinstance(e, ev.ListingStarted):
            listed[e.care_unit_id] = listed.get(e.care_unit_id, 0) + 1
        elif isinstance(e, ev.ListingEnded):
            listed[e.care_unit_id] = max(0, listed.get(e.care_unit_id, 0) - 1)
        elif isinstance(e, ev.FastLakarkontaktAssigned):
            sizes[e.list_id] = sizes.get(e.list_id, 0) + 1
        elif isinstance(e, ev.FastLakarkontaktEnded):
            sizes[e.list_id] = max(0, sizes.get(e.list_id, 0) - 1)


# --------------------------------------------------------------------------- the report


@dataclass
class Finding:
    """All rows with one kind of problem: counts and the first ``limit`` line numbers."""

    code: str
    rule_id: str | None
    outcome: str
    message_sv: str
    message_en: str
    rows: int = 0
    persons: int = 0
    lines: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "rule_id": self.rule_id, "outcome": self.outcome, "rows": self.rows,
                "persons": self.persons, "lines": self.lines, "lines_truncated": len(self.lines) < self.rows,
                "message_sv": self.message_sv, "message_en": self.message_en}


@dataclass
class ImportReport:
    """What an import (or a dry run) found and did. Line numbers only, never a person id."""

    profile: str
    as_of: date
    dry_run: bool
    max_lines: int = 10_000
    rows: int = 0
    header: bool = False
    persons: int = 0
    listings_started: int = 0
    named_assigned: int = 0
    fictive_assigned: int = 0
    already_registered: int = 0  # rows that changed nothing (already in the register)
    persons_created: int = 0
    outbox_events: int = 0
    failed_rows: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)
    over_capacity: list[OverCapacity] = field(default_factory=list)

    def _finding(self, code: str, rule_id: str | None, outcome: str, sv: str, en: str) -> Finding:
        f = self.findings.get(code)
        if f is None:
            f = self.findings[code] = Finding(code, rule_id, outcome, sv, en)
        return f

    def _lines(self, f: Finding, lines: Sequence[int]) -> None:
        f.rows += len(lines)
        room = self.max_lines - len(f.lines)
        if room > 0:
            f.lines.extend(lines[:room])

    def add(self, violation: Violation, lines: Sequence[int], new_person: bool = False) -> None:
        f = self._finding(violation.value, violation.rule_id.value if violation.rule_id else None,
                          violation.outcome.value, violation.message_sv, violation.message_en)
        self._lines(f, lines)
        if new_person:  # several listings / FLKs: count each person once
            f.persons += 1

    def add_rejection(self, reason: RejectionReason, line: int, listing: bool) -> None:
        """decide() rejected the row's listing (row not imported) or its FLK (listing kept)."""
        outcome = Outcome.SKIPPED if listing else Outcome.LISTING_ONLY
        f = self._finding(f"rejected_{reason.value}", reason.rule_id.value, outcome.value,
                          reason.message_sv, reason.message_en)
        self._lines(f, [line])

    def add_failure(self, line: int) -> None:
        self.failed_rows += 1
        f = self._finding("database_error", None, Outcome.SKIPPED.value,
                          "Raden kunde inte skrivas (databasfel); övriga rader påverkas inte.",
                          "The row could not be written (database error); other rows are not affected.")
        self._lines(f, [line])

    @property
    def violations(self) -> int:
        """Rows with a violation (duplicates are not one) plus over-capacity lists."""
        return sum(f.rows for f in self.findings.values() if f.code != Violation.DUPLICATE_ROW.value) + len(
            self.over_capacity)

    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "rows": self.rows,
            "header": self.header,
            "persons": self.persons,
            "imported": {
                "listings_started": self.listings_started,
                "named_fast_lakarkontakt": self.named_assigned,
                "fictive_list_placements": self.fictive_assigned,
                "persons_created": self.persons_created,
                "outbox_events": self.outbox_events,
            },
            "unchanged_rows": self.already_registered,
            "failed_rows": self.failed_rows,
            "violations": self.violations,
            "findings": [f.as_json() for f in sorted(self.findings.values(), key=lambda f: (f.rule_id or "~", f.code))],
            "over_capacity": [o.as_json() for o in self.over_capacity],
        }
