"""Who may read what: pure rules, used by every API."""
from __future__ import annotations

from flk.security.tokens import Principal, Role

UNIT_STAFF = frozenset({Role.CLINICIAN, Role.VERKSAMHETSCHEF})
REGION_WIDE = frozenset({Role.LISTING_ADMIN, Role.SERVICE})


def may_read_patient(principal: Principal, patient_key: str, listing_unit: str | None) -> bool:
    """A unit's staff read only patients listed at one of their units; a patient only themselves."""
    if principal.role is Role.PATIENT:
        return principal.patient_key == patient_key
    if principal.role in REGION_WIDE:
        return True
    if principal.role in UNIT_STAFF:
        return listing_unit is not None and listing_unit in principal.units
    return False


def may_read_unit(principal: Principal, unit_id: str) -> bool:
    """Unit-level data (lists, aggregates, worklist)."""
    if principal.role in REGION_WIDE or principal.role is Role.ANALYST:
        return True
    if principal.role in UNIT_STAFF:
        return unit_id in principal.units
    return False


def may_read_region_figures(principal: Principal) -> bool:
    """Region-level goal figures (aggregates over the region's units): anyone working in the region."""
    return principal.role not in (Role.PATIENT, Role.EHR_INTEGRATION)


def may_write_visits(principal: Principal, unit_id: str) -> bool:
    """Care contacts (FHIR ingest): an EHR integration, for the units in its token (none listed: every unit
    of the region, for a region-wide integration)."""
    if principal.role is not Role.EHR_INTEGRATION:
        return False
    return not principal.units or unit_id in principal.units


def may_read_unit_patients(principal: Principal, unit_id: str) -> bool:
    """Patient-level lists of a unit (the worklist): staff of that unit, or region administrators."""
    if principal.role in REGION_WIDE:
        return True
    return principal.role in UNIT_STAFF and unit_id in principal.units
