"""Swedish FHIR R4 examples, shaped as EHRs send them (HL7 Sweden's identifier systems, HSA-ids, HOSP
codes), for the FHIR ingest's tests and bench. Every personnummer here is made up (valid check digit)."""
from __future__ import annotations

import copy
from datetime import date
from typing import Any

from stdnum import luhn

PNR = "http://electronichealth.se/identifier/personnummer"
PNR_OID = "urn:oid:1.2.752.129.2.1.3.1"
SAMORDNING = "http://electronichealth.se/identifier/samordningsnummer"
HSA = "urn:oid:1.2.752.29.4.19"
HSA_OID_RIV = "urn:oid:1.2.752.129.2.1.4.1"
HOSP = "urn:oid:1.2.752.116.3.1.3"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SCT = "http://snomed.info/sct"
PPRF = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}

TOLVAN = "191212121212"  # the Swedish Tax Agency's test personnummer
SAMORDNINGSNUMMER = "197010632391"
UNIT = "SE2321000016-15TK"  # a vårdcentral's HSA-id
DOCTOR = "SE2321000016-7P3K"
NURSE = "SE2321000016-9SJK"


def personnummer(born: date, serial: int) -> str:
    """A 12-digit personnummer with a valid check digit."""
    body = f"{born:%y%m%d}{serial:03d}"
    return f"{born:%Y}"[:2] + body + luhn.calc_check_digit(body)


def practitioner_role(role_id: str, hsa_id: str, hosp_code: str) -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "id": role_id,
            "practitioner": {"identifier": {"system": HSA, "value": hsa_id}},
            "code": [{"coding": [{"system": HOSP, "code": hosp_code}]}]}


def encounter(encounter_id: str = "enc-1", *, pnr: str = TOLVAN, practitioner: str = DOCTOR, hosp: str = "LK",
              unit: str = UNIT, start: str = "2026-11-03T09:30:00+01:00", status: str = "finished",
              klass: str = "AMB", snomed: str | None = None, version: str | None = "1",
              person_system: str = PNR) -> dict[str, Any]:
    """A doctor's visit at the vårdcentral (Cosmic-shaped: a contained PractitionerRole, a logical
    reference to the patient by personnummer, the unit by HSA-id)."""
    resource: dict[str, Any] = {
        "resourceType": "Encounter", "id": encounter_id,
        "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/Encounter"]},
        "contained": [practitioner_role("pr", practitioner, hosp)],
        "status": status,
        "class": {"system": ACT, "code": klass},
        "subject": {"type": "Patient", "identifier": {"system": person_system, "value": pnr}},
        "participant": [{"type": [PPRF], "individual": {"reference": "#pr"}}],
        "period": {"start": start, "end": start[:11] + "10:00:00" + start[19:]},
        "serviceProvider": {"identifier": {"system": HSA, "value": unit}},
    }
    if snomed:
        resource["type"] = [{"coding": [{"system": SCT, "code": snomed}]}]
    if version is not None:
        resource["meta"]["versionId"] = version
    return resource


def telephone_contact_by_nurse(encounter_id: str = "enc-tel-1") -> dict[str, Any]:
    """A district nurse's telephone contact (TakeCare-shaped: class VR, type SNOMED 185317003)."""
    return encounter(encounter_id, practitioner=NURSE, hosp="SJ", klass="VR", snomed="185317003",
                     start="2026-11-04T14:05:00+01:00")


def home_visit(encounter_id: str = "enc-hem-1") -> dict[str, Any]:
    return encounter(encounter_id, klass="HH", start="2026-11-05T10:00:00+01:00")


def video_visit_samordningsnummer(encounter_id: str = "enc-vr-1") -> dict[str, Any]:
    """A video visit of a patient with a samordningsnummer (the OID forms of the systems)."""
    resource = encounter(encounter_id, pnr=SAMORDNINGSNUMMER, person_system="urn:oid:1.2.752.129.2.1.3.3",
                         klass="VR", start="2026-11-06T08:15:00+01:00")
    resource["serviceProvider"]["identifier"]["system"] = HSA_OID_RIV
    return resource


def transaction_bundle(encounters: list[dict[str, Any]], kind: str = "transaction") -> dict[str, Any]:
    """Patients as their own entries (urn:uuid fullUrls), Encounters referring to them (Melior-shaped)."""
    entries: list[dict[str, Any]] = []
    patients: dict[str, str] = {}
    for enc in encounters:
        enc = copy.deepcopy(enc)
        ident = enc["subject"].get("identifier")
        if ident is not None:
            key = ident["system"] + "|" + ident["value"]
            if key not in patients:
                patients[key] = f"urn:uuid:00000000-0000-4000-8000-{len(patients):012d}"
                entries.append({"fullUrl": patients[key], "resource": {
                    "resourceType": "Patient", "identifier": [ident]}, "request": {"method": "POST", "url": "Patient"}})
            enc["subject"] = {"reference": patients[key]}
        entries.append({"fullUrl": f"urn:uuid:{enc['id']}", "resource": enc,
                        "request": {"method": "PUT", "url": f"Encounter/{enc['id']}"}})
    return {"resourceType": "Bundle", "type": kind, "entry": entries}
