"""An FHIR R4 Encounter -> the facts of a ``visit.recorded.v1`` (or a cancellation).

The mapping (docs/fhir-ingest.md has it as a table):

* ``Encounter.status``: ``finished``, ``in-progress``, ``arrived``, ``triaged``, ``onleave`` -> a care
  contact (recorded); ``cancelled`` -> cancelled; ``entered-in-error`` -> entered in error; ``planned``,
  ``unknown`` -> not (yet) a contact: nothing recorded, an earlier version's visit is withdrawn.
* ``Encounter.period.start`` (a date-time with a time zone) -> ``occurred_at``.
* ``Encounter.subject`` -> the Patient's personnummer / samordningsnummer -> the pseudonymous
  ``patient_key`` (a logical reference with the identifier, a contained Patient or one in the bundle).
* ``Encounter.participant`` (the one typed ``PPRF``, primary performer, else the first with an
  individual) -> ``practitioner_id`` (HSA-id) and ``profession`` (HOSP legitimation code of the
  PractitionerRole.code or the Practitioner.qualification).
* ``Encounter.serviceProvider`` -> ``care_unit_id`` (HSA-id of the care unit).
* ``Encounter.type`` (SNOMED CT) and ``Encounter.class`` (v3 ActCode) -> ``contact_type``; a
  recognised type wins over the class (the class has no code for a telephone contact).

Pure: no I/O; a problem is an :class:`Issue` at its FHIRPath, never with the identifier's value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.ingest.domain.fhir import Issue
from services.ingest.domain.identifiers import (
    HSA_ID_SYSTEMS,
    PERSON_ID_SYSTEMS,
    IdentifierProblem,
    PatientKeyMaker,
    hsa_id,
)

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SNOMED = "http://snomed.info/sct"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: HOSP, the register of authorised health care professionals (HL7 Sweden's SEBaseHOSPLegitimationsYrkeVS)
HOSP = "urn:oid:1.2.752.116.3.1.3"

Kind = Literal["contact", "cancelled", "entered_in_error", "not_a_contact"]

STATUS_KIND: dict[str, Kind] = {
    "finished": "contact",
    "in-progress": "contact",
    "arrived": "contact",
    "triaged": "contact",
    "onleave": "contact",
    "cancelled": "cancelled",
    "entered-in-error": "entered_in_error",
    "planned": "not_a_contact",
    "unknown": "not_a_contact",
}

#: Encounter.type (SNOMED CT) -> contact type; wins over the class
SNOMED_CONTACT_TYPE: dict[str, str] = {
    "185317003": "telefon",  # Telephone encounter
    "448337001": "digital",  # Telemedicine consultation with patient
    "439708006": "hembesok",  # Home visit
    "11429006": "besok",  # Consultation
    "185349003": "besok",  # Encounter for check up
    "308335008": "besok",  # Patient encounter procedure
}
#: Encounter.class (v3 ActCode) -> contact type
CLASS_CONTACT_TYPE: dict[str, str] = {
    "AMB": "besok",  # ambulatory: a visit at the unit
    "HH": "hembesok",  # home health
    "VR": "digital",  # virtual (video, chat); a telephone contact says so in Encounter.type
}
#: HOSP legitimation codes -> the contracts' profession ('läkare' marks a doctor contact)
HOSP_PROFESSION: dict[str, str] = {
    "LK": "läkare",
    "SJ": "sjuksköterska",
    "BM": "barnmorska",
    "FT": "fysioterapeut",
    "SG": "fysioterapeut",  # sjukgymnast, the title before 2014
    "AT": "arbetsterapeut",
    "PS": "psykolog",
    "PT": "psykoterapeut",
    "DT": "dietist",
    "LG": "logoped",
    "HK": "kurator",  # hälso- och sjukvårdskurator
}


@dataclass(frozen=True)
class VisitFacts:
    """What a recorded visit says (the data of ``visit.recorded.v1`` but its id)."""

    patient_key: str
    practitioner_id: str
    profession: str
    care_unit_id: str
    contact_type: str
    occurred_at: str  # ISO 8601 with its offset

    def as_dict(self) -> dict[str, str]:
        return {"patient_key": self.patient_key, "practitioner_id": self.practitioner_id,
                "profession": self.profession, "care_unit_id": self.care_unit_id,
                "contact_type": self.contact_type, "occurred_at": self.occurred_at}


@dataclass(frozen=True)
class EncounterVersion:
    """One version of an Encounter as this adapter understands it."""

    encounter_id: str
    version_id: str | None  # meta.versionId
    last_updated: datetime | None  # meta.lastUpdated
    content_hash: str  # keyed digest without meta (a resource without versionId is versioned by it)
    kind: Kind
    visit: VisitFacts | None  # for a contact
    patient_key: str | None = None  # known from the subject also for a cancellation, when given

    @property
    def version_key(self) -> str:
        return "v:" + self.version_id if self.version_id else "h:" + self.content_hash[:32]


@dataclass
class References:
    """Resolves an Encounter's references: contained resources (``#id``), bundle entries (by fullUrl and
    by ``Type/id``). Values are ``(resource, FHIRPath of the resource)``."""

    by_reference: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def add(self, resource: Any, path: str, full_url: str | None = None) -> None:
        rid = getattr(resource, "id", None)
        rtype = resource.get_resource_type()
        if full_url:
            self.by_reference[full_url] = (resource, path)
        if rid:
            self.by_reference[f"{rtype}/{rid}"] = (resource, path)

    def with_contained(self, encounter: Any, path: str) -> "References":
        if not encounter.contained:
            return self
        local = References(dict(self.by_reference))
        for i, resource in enumerate(encounter.contained):
            if getattr(resource, "id", None):
                local.by_reference["#" + resource.id] = (resource, f"{path}.contained[{i}]")
        return local

    def resolve(self, reference: str) -> tuple[Any, str] | None:
        found = self.by_reference.get(reference)
        if found is None and "/" in reference and not reference.startswith("urn:"):
            parts = reference.rstrip("/").split("/")  # an absolute URL: its Type/id tail
            if len(parts) >= 2:
                found = self.by_reference.get("/".join(parts[-2:]))
        return found


class _Problems:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, expression: str, diagnostics: str, code: str = "invalid") -> None:
        self.issues.append(Issue(expression, diagnostics, code))


def map_encounter(encounter: Any, content_hash: str, keys: PatientKeyMaker, refs: References | None = None,
                  path: str = "Encounter") -> tuple[EncounterVersion | None, list[Issue]]:
    """The version this Encounter is, or None and every problem found (all of them, not the first)."""
    problems = _Problems()
    refs = (refs or References()).with_contained(encounter, path)
    if not encounter.id:
        problems.add(f"{path}.id", "the Encounter has no id (it is the key that makes ingest idempotent)", "required")
    kind = STATUS_KIND.get(encounter.status or "")
    if kind is None:
        problems.add(f"{path}.status", "status must be one of " + ", ".join(STATUS_KIND), "value")
    meta = encounter.meta
    version_id = meta.versionId if meta is not None else None
    last_updated = meta.lastUpdated if meta is not None else None
    patient = None
    if encounter.subject is not None:
        patient = _patient_key(encounter.subject, f"{path}.subject", refs, keys, problems)
    elif kind == "contact":
        problems.add(f"{path}.subject", "a care contact needs its patient (subject)", "required")
    visit = None
    if kind == "contact":
        practitioner, profession = _performer(encounter, path, refs, problems)
        unit = _care_unit(encounter, path, refs, problems)
        contact_type = _contact_type(encounter, path, problems)
        occurred_at = _occurred_at(encounter, path, problems)
        if not problems.issues:
            visit = VisitFacts(patient, practitioner, profession, unit, contact_type, occurred_at)  # type: ignore[arg-type]
    if problems.issues:
        return None, problems.issues
    return EncounterVersion(encounter.id, version_id, last_updated, content_hash, kind, visit, patient), []  # type: ignore[arg-type]


def _patient_key(subject: Any, at: str, refs: References, keys: PatientKeyMaker, problems: _Problems) -> str | None:
    if subject.type and subject.type != "Patient":
        problems.add(f"{at}.type", "the subject must be a Patient", "value")
        return None
    if subject.reference:
        found = refs.resolve(subject.reference)
        if found is not None:
            resource, resource_path = found
            if resource.get_resource_type() != "Patient":
                problems.add(f"{at}.reference", "the subject must be a Patient", "value")
                return None
            for i, identifier in enumerate(resource.identifier or ()):
                if identifier.system in PERSON_ID_SYSTEMS:
                    return _key(identifier, f"{resource_path}.identifier[{i}]", keys, problems)
            problems.add(at, f"the Patient ({resource_path}) has no personnummer or samordningsnummer", "required")
            return None
        if subject.identifier is None:
            problems.add(f"{at}.reference", "the Patient is neither contained nor in the bundle (and the "
                         "reference carries no identifier)", "not-found")
            return None
    if subject.identifier is not None:
        if subject.identifier.system not in PERSON_ID_SYSTEMS:
            problems.add(f"{at}.identifier.system", "the patient identifier must be a personnummer or "
                         "samordningsnummer (HL7 Sweden's identifier systems)", "value")
            return None
        return _key(subject.identifier, f"{at}.identifier", keys, problems)
    problems.add(at, "the subject names no Patient (no reference and no identifier)", "required")
    return None


def _key(identifier: Any, at: str, keys: PatientKeyMaker, problems: _Problems) -> str | None:
    try:
        return keys.patient_key(identifier.system, identifier.value)
    except IdentifierProblem as exc:
        problems.add(f"{at}.value", str(exc), "value")
        return None


def _hsa(identifiers: Any, at: str, problems: _Problems, what: str) -> str | None:
    """The HSA-id among ``identifiers`` (a list, or one Identifier); an issue when there is none."""
    if identifiers is None:
        identifiers = []
    single = not isinstance(identifiers, list)
    items = [identifiers] if single else identifiers
    for i, identifier in enumerate(items):
        if identifier.system in HSA_ID_SYSTEMS:
            where = at if single else f"{at}[{i}]"
            try:
                return hsa_id(identifier.system, identifier.value)
            except IdentifierProblem as exc:
                problems.add(f"{where}.value", str(exc), "value")
                return None
    problems.add(at, f"{what} has no HSA-id (identifier systems: {', '.join(sorted(HSA_ID_SYSTEMS))})", "required")
    return None


def _performer(encounter: Any, path: str, refs: References, problems: _Problems) -> tuple[str | None, str | None]:
    participants = encounter.participant or []
    chosen = None
    for i, p in enumerate(participants):
        if p.individual is not None and any(c.system == PARTICIPATION_TYPE and c.code == "PPRF"
                                            for t in (p.type or []) for c in (t.coding or [])):
            chosen = i
            break
    if chosen is None:
        chosen = next((i for i, p in enumerate(participants) if p.individual is not None), None)
    if chosen is None:
        problems.add(f"{path}.participant", "a care contact needs a participant with an individual (the "
                     "practitioner)", "required")
        return None, None
    at = f"{path}.participant[{chosen}].individual"
    individual = participants[chosen].individual
    resolved = refs.resolve(individual.reference) if individual.reference else None
    if individual.reference and resolved is None and individual.identifier is None:
        problems.add(f"{at}.reference", "the practitioner is neither contained nor in the bundle (and the "
                     "reference carries no identifier)", "not-found")
        return None, None
    if resolved is None:  # a logical reference: the HSA-id, but nothing says the profession
        practitioner = _hsa(individual.identifier, f"{at}.identifier", problems, "the participant")
        problems.add(at, "no profession: reference a PractitionerRole (code) or a Practitioner (qualification) "
                     f"with a HOSP legitimation code ({HOSP})", "required")
        return practitioner, None
    resource, resource_path = resolved
    rtype = resource.get_resource_type()
    if rtype == "PractitionerRole":
        practitioner = None
        person = resource.practitioner
        person_resolved = refs.resolve(person.reference) if person is not None and person.reference else None
        if person_resolved is not None and person_resolved[0].get_resource_type() == "Practitioner":
            practitioner = _hsa(person_resolved[0].identifier, f"{person_resolved[1]}.identifier", problems,
                                "the Practitioner")
        elif person is not None and person.identifier is not None:
            practitioner = _hsa(person.identifier, f"{resource_path}.practitioner.identifier", problems,
                                "the PractitionerRole's practitioner")
        else:
            practitioner = _hsa(resource.identifier, f"{resource_path}.identifier", problems, "the PractitionerRole")
        profession = _profession(resource.code, f"{resource_path}.code")
        if profession is None and person_resolved is not None:
            profession = _qualification(person_resolved[0], person_resolved[1])
        if profession is None:
            problems.add(f"{resource_path}.code", f"no profession: a HOSP legitimation code ({HOSP}) of "
                         f"{', '.join(HOSP_PROFESSION)}", "required")
        return practitioner, profession
    if rtype == "Practitioner":
        practitioner = _hsa(resource.identifier, f"{resource_path}.identifier", problems, "the Practitioner")
        profession = _qualification(resource, resource_path)
        if profession is None:
            problems.add(f"{resource_path}.qualification", f"no profession: a HOSP legitimation code ({HOSP}) of "
                         f"{', '.join(HOSP_PROFESSION)}", "required")
        return practitioner, profession
    problems.add(f"{at}.reference", "the participant must be a Practitioner or a PractitionerRole", "value")
    return None, None


def _profession(concepts: Any, at: str) -> str | None:
    for concept in concepts or []:
        for coding in concept.coding or []:
            if coding.system == HOSP and coding.code in HOSP_PROFESSION:
                return HOSP_PROFESSION[coding.code]
    return None


def _qualification(practitioner: Any, at: str) -> str | None:
    return _profession([q.code for q in (practitioner.qualification or []) if q.code is not None], at)


def _care_unit(encounter: Any, path: str, refs: References, problems: _Problems) -> str | None:
    at = f"{path}.serviceProvider"
    provider = encounter.serviceProvider
    if provider is None:
        problems.add(at, "a care contact needs its care unit (serviceProvider, with the unit's HSA-id)", "required")
        return None
    if provider.reference:
        found = refs.resolve(provider.reference)
        if found is not None:
            resource, resource_path = found
            if resource.get_resource_type() != "Organization":
                problems.add(f"{at}.reference", "the serviceProvider must be an Organization", "value")
                return None
            return _hsa(resource.identifier, f"{resource_path}.identifier", problems, "the Organization")
        if provider.identifier is None:
            problems.add(f"{at}.reference", "the Organization is neither contained nor in the bundle (and the "
                         "reference carries no identifier)", "not-found")
            return None
    return _hsa(provider.identifier, f"{at}.identifier", problems, "the serviceProvider")


def _contact_type(encounter: Any, path: str, problems: _Problems) -> str | None:
    for concept in encounter.type or []:
        for coding in concept.coding or []:
            if coding.system == SNOMED and coding.code in SNOMED_CONTACT_TYPE:
                return SNOMED_CONTACT_TYPE[coding.code]
    klass = encounter.class_fhir
    if klass is not None and klass.code in CLASS_CONTACT_TYPE and klass.system in (None, ACT_CODE):
        return CLASS_CONTACT_TYPE[klass.code]
    problems.add(f"{path}.class", "not a primary-care contact type: class AMB, HH or VR (v3 ActCode), or a type "
                 f"of SNOMED CT {', '.join(SNOMED_CONTACT_TYPE)}", "value")
    return None


def _occurred_at(encounter: Any, path: str, problems: _Problems) -> str | None:
    start = encounter.period.start if encounter.period is not None else None
    if start is None:
        problems.add(f"{path}.period.start", "a care contact needs its start (period.start)", "required")
        return None
    if not isinstance(start, datetime) or start.tzinfo is None or start.utcoffset() is None:
        problems.add(f"{path}.period.start", "period.start must be a date-time with a time zone", "value")
        return None
    return start.isoformat()
