"""The listing register's rows turned into domain values: the queries that load a decision's state
(``LOAD_PATIENTS``, ``LOAD_UNITS``) and the functions that read their rows."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

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
