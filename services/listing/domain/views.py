"""Pure read-side predicates and projections used by KPIs, alerts and the patient (1177) view.

* F3: a fictive list is not a named FLK — :func:`has_named_fast_lakarkontakt` is False for a
  patient who is only on ``"<VC> Dr X"``, and :func:`patient_view` never shows a fictive list.
* F7: a patient who declined lacks an FLK in KPIs (:func:`lacks_fast_lakarkontakt`) but is not
  "missing" for alerts (:func:`missing_fast_lakarkontakt_for_alerts`) when the profile says so.
* P1: deceased / emigrated persons never raise alerts.
* P3: a minor's listing request waiting for the other guardian's consent is shown as pending (which
  unit, since when, until when) while it is open and its wait is not over.
* P2: the patient view holds ids, the unit's name and the doctor's list name — there is no field
  for the patient's own name or address, protected identity or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .model import (
    FastVardkontakt,
    FlkAssignment,
    ListingState,
    ListKind,
    PatientRecord,
    PopulationStatus,
)
from .policy import PolicyProfile

GAP_FAST_LAKARKONTAKT = "fast_lakarkontakt"
GAP_FAST_VARDKONTAKT = "fast_vardkontakt"


def assignments_on(record: PatientRecord, on: date) -> tuple[FlkAssignment, ...]:
    return tuple(a for a in record.assignments if a.period.contains(on))


def named_assignments_on(record: PatientRecord, on: date) -> tuple[FlkAssignment, ...]:
    return tuple(a for a in assignments_on(record, on) if a.list_kind is ListKind.DOCTOR)


def fast_vardkontakter_on(record: PatientRecord, on: date) -> tuple[FastVardkontakt, ...]:
    return tuple(v for v in record.fast_vardkontakter if v.period.contains(on))


def listed_unit_on(record: PatientRecord, on: date) -> str | None:
    """The unit responsible for the person on ``on`` (L6: from the day responsibility starts)."""
    return next((lst.care_unit_id for lst in record.listings if lst.period.contains(on)), None)


def has_named_fast_lakarkontakt(record: PatientRecord, on: date) -> bool:
    """G1 numerator: at least one active FLK that is not a fictive list (F3)."""
    return bool(named_assignments_on(record, on))


def lacks_fast_lakarkontakt(record: PatientRecord, on: date) -> bool:
    """KPI view: no named FLK — a fictive list, a declined FLK or a doctor who left all count as lacking."""
    return not has_named_fast_lakarkontakt(record, on)


def has_declined_fast_lakarkontakt(record: PatientRecord, on: date) -> bool:
    return any(d.period.contains(on) for d in record.declines)


def is_in_population(record: PatientRecord) -> bool:
    return record.person.population_status is PopulationStatus.FOLKBOKFORD


def missing_fast_lakarkontakt_for_alerts(record: PatientRecord, on: date, policy: PolicyProfile) -> bool:
    """Alert view: listed, alive and resident (P1), lacking a named FLK (F3, F8), not declined (F7)."""
    if not is_in_population(record) or listed_unit_on(record, on) is None:
        return False
    if has_named_fast_lakarkontakt(record, on):
        return False
    return not (policy.f7_declined_suppresses_alerts and has_declined_fast_lakarkontakt(record, on))


def care_gaps(record: PatientRecord, on: date, policy: PolicyProfile, rub_band: int | None = None) -> frozenset[str]:
    """Care gaps for the alert cohorts (docs/domain.md §6): RUB high-need patients and SÄBO residents.

    A high-need patient (or SÄBO resident) missing an FLK has the ``fast_lakarkontakt`` gap; in a
    profile with ``rub_high_need_requires_fast_vardkontakt`` (Kalmar, seed 004) a RUB high-need
    patient without a fast vårdkontakt also has the ``fast_vardkontakt`` gap.
    """
    high_need = rub_band is not None and rub_band in policy.rub_high_need_bands
    if not (high_need or record.person.sabo_resident) or not is_in_population(record):
        return frozenset()
    if listed_unit_on(record, on) is None:
        return frozenset()
    gaps: set[str] = set()
    if missing_fast_lakarkontakt_for_alerts(record, on, policy):
        gaps.add(GAP_FAST_LAKARKONTAKT)
    if high_need and policy.rub_high_need_requires_fast_vardkontakt and not fast_vardkontakter_on(record, on):
        gaps.add(GAP_FAST_VARDKONTAKT)
    return frozenset(gaps)


# --------------------------------------------------------------------------- patient (1177) view


@dataclass(frozen=True, slots=True)
class FastLakarkontaktView:
    list_id: str
    list_display_name: str | None
    practitioner_id: str | None
    coordinating: bool


@dataclass(frozen=True, slots=True)
class FastVardkontaktView:
    practitioner_id: str
    profession: str


@dataclass(frozen=True, slots=True)
class PendingListingView:
    """P3: the child's listing request that waits for a guardian's consent (ids and dates only)."""

    care_unit_id: str
    unit_display_name: str | None
    requested_on: date
    expires_on: date
    awaiting_guardians: int


def pending_listing_on(record: PatientRecord, state: ListingState, on: date) -> PendingListingView | None:
    """The open pending request, unless its wait is over on ``on`` (the sweep may not have run yet)."""
    p = record.open_pending_listing
    if p is None or on >= p.expires_on:
        return None
    unit = state.units.get(p.care_unit_id)
    return PendingListingView(p.care_unit_id, unit.name if unit is not None else None, p.requested_on,
                              p.expires_on, len(p.awaiting_guardian_keys))


@dataclass(frozen=True, slots=True)
class PatientView:
    """What the patient sees on 1177. Never a fictive list (F3); never the patient's name (P2)."""

    patient_key: str
    care_unit_id: str | None
    unit_display_name: str | None
    fast_lakarkontakter: tuple[FastLakarkontaktView, ...]
    fast_vardkontakter: tuple[FastVardkontaktView, ...]
    declined_fast_lakarkontakt: bool
    pending_listing: PendingListingView | None = None


def patient_view(record: PatientRecord, state: ListingState, on: date) -> PatientView:
    unit_id = listed_unit_on(record, on)
    unit = state.units.get(unit_id) if unit_id is not None else None
    flks = tuple(
        FastLakarkontaktView(
            list_id=a.list_id,
            list_display_name=(lst.display_name if (lst := state.lists.get(a.list_id)) is not None else None),
            practitioner_id=a.practitioner_id,
            coordinating=a.coordinating,
        )
        for a in named_assignments_on(record, on)
    )
    return PatientView(
        patient_key=record.patient_key,
        care_unit_id=unit_id,
        unit_display_name=unit.name if unit is not None else None,
        fast_lakarkontakter=flks,
        fast_vardkontakter=tuple(
            FastVardkontaktView(v.practitioner_id, v.profession) for v in fast_vardkontakter_on(record, on)
        ),
        declined_fast_lakarkontakt=has_declined_fast_lakarkontakt(record, on),
        pending_listing=pending_listing_on(record, state, on),
    )
