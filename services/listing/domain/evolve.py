"""``evolve(state, event) -> state``: apply one event. Total, pure, never rejects.

Rejections and warnings do not change state. Closing something closes its period; history
is kept (P1). Events about a person the state does not hold (an adapter loaded a slice) are
applied to the parts it does hold and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date
from typing import Any

from . import events as ev
from .model import (
    FastVardkontakt,
    FastVardkontaktRequest,
    FlkAssignment,
    FlkDecline,
    Listing,
    ListingChange,
    ListingState,
    Period,
    PatientRecord,
    PendingListing,
    PopulationStatus,
    with_item,
)


def _bump(state: ListingState, field: str, key: str, delta: int) -> ListingState:
    counts = getattr(state, field)
    return replace(state, **{field: with_item(counts, key, max(0, counts.get(key, 0) + delta))})


def _update_patient(
    state: ListingState, patient_key: str, change: Callable[[PatientRecord], PatientRecord]
) -> ListingState:
    record = state.patients.get(patient_key)
    if record is None:
        return state
    return state.with_patient(change(record))


def _close_declines(record: PatientRecord, care_unit_id: str, on: date) -> tuple[FlkDecline, ...]:
    return tuple(
        replace(d, period=d.period.closed_at(on)) if d.period.is_open and d.care_unit_id == care_unit_id else d
        for d in record.declines
    )


# ---------------------------------------------------------------- listing


def _listing_started(state: ListingState, e: ev.ListingStarted) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        listing = Listing(
            care_unit_id=e.care_unit_id,
            registered_on=e.started_on,
            period=Period(e.responsibility_from),
            origin=e.origin,
            channel=e.channel,
            initiated_by=e.initiated_by,
            exemption_reason=e.exemption_reason,
        )
        changes = r.changes
        if e.previous_care_unit_id is not None:
            changes += (
                ListingChange(
                    on=e.started_on,
                    from_care_unit_id=e.previous_care_unit_id,
                    to_care_unit_id=e.care_unit_id,
                    initiated_by=e.initiated_by,
                    origin=e.origin,
                    exemption_reason=e.exemption_reason,
                ),
            )
        return replace(r, listings=r.listings + (listing,), changes=changes)

    return _bump(_update_patient(state, e.patient_key, change), "listed_count_by_unit", e.care_unit_id, +1)


def _listing_ended(state: ListingState, e: ev.ListingEnded) -> ListingState:
    closed = False

    def change(r: PatientRecord) -> PatientRecord:
        nonlocal closed
        listings = []
        for lst in r.listings:
            if lst.period.is_open and lst.care_unit_id == e.care_unit_id:
                lst = replace(lst, period=lst.period.closed_at(e.ended_on), end_reason=e.reason)
                closed = True
            listings.append(lst)
        return replace(r, listings=tuple(listings), declines=_close_declines(r, e.care_unit_id, e.ended_on))

    state = _update_patient(state, e.patient_key, change)
    if closed or e.patient_key not in state.patients:
        state = _bump(state, "listed_count_by_unit", e.care_unit_id, -1)
    return state


def _awaiting_consent(state: ListingState, e: ev.ListingAwaitingConsent) -> ListingState:
    """P3: a pending request opens — or, announced again (same unit and request date), its sets change."""
    def change(r: PatientRecord) -> PatientRecord:
        pending = PendingListing(
            care_unit_id=e.care_unit_id, requested_on=e.requested_on, expires_on=e.expires_on,
            consented_guardian_keys=e.consented_guardian_keys, awaiting_guardian_keys=e.awaiting_guardian_keys,
            origin=e.origin, channel=e.channel, initiated_by=e.initiated_by, exemption_reason=e.exemption_reason,
            residency_exception=e.residency_exception,
        )
        current = r.open_pending_listing
        if current is not None and (current.care_unit_id, current.requested_on) == (e.care_unit_id, e.requested_on):
            return replace(r, pending_listings=tuple(pending if p is current else p for p in r.pending_listings))
        return replace(r, pending_listings=r.pending_listings + (pending,))

    return _update_patient(state, e.patient_key, change)


def _consent_closed(state: ListingState, e: ev.ListingConsentClosed) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        return replace(r, pending_listings=tuple(
            replace(p, closed_on=max(e.closed_on, p.requested_on), outcome=e.outcome) if p.is_open else p
            for p in r.pending_listings))

    return _update_patient(state, e.patient_key, change)


# ---------------------------------------------------------------- fast läkarkontakt


def _flk_assigned(state: ListingState, e: ev.FastLakarkontaktAssigned) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        assignment = FlkAssignment(
            list_id=e.list_id,
            care_unit_id=e.care_unit_id,
            list_kind=e.list_kind,
            practitioner_id=e.practitioner_id,
            coordinating=e.coordinating,
            period=Period(e.assigned_on),
        )
        return replace(
            r,
            assignments=r.assignments + (assignment,),
            declines=_close_declines(r, e.care_unit_id, e.assigned_on),
        )

    return _bump(_update_patient(state, e.patient_key, change), "list_size_by_list", e.list_id, +1)


def _flk_ended(state: ListingState, e: ev.FastLakarkontaktEnded) -> ListingState:
    closed = False

    def change(r: PatientRecord) -> PatientRecord:
        nonlocal closed
        assignments = []
        for a in r.assignments:
            if a.period.is_open and a.list_id == e.list_id:
                a = replace(a, period=a.period.closed_at(e.ended_on), end_reason=e.reason)
                closed = True
            assignments.append(a)
        return replace(r, assignments=tuple(assignments))

    state = _update_patient(state, e.patient_key, change)
    if closed or e.patient_key not in state.patients:
        state = _bump(state, "list_size_by_list", e.list_id, -1)
    return state


def _coordinating_changed(state: ListingState, e: ev.CoordinatingFastLakarkontaktChanged) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        return replace(
            r,
            assignments=tuple(
                replace(a, coordinating=a.list_id == e.list_id) if a.period.is_open else a for a in r.assignments
            ),
        )

    return _update_patient(state, e.patient_key, change)


def _flk_declined(state: ListingState, e: ev.FastLakarkontaktDeclined) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        return replace(r, declines=r.declines + (FlkDecline(e.care_unit_id, Period(e.declined_on)),))

    return _update_patient(state, e.patient_key, change)


def _role_ended(state: ListingState, e: ev.PractitionerRoleEnded) -> ListingState:
    role = state.roles.get(e.role_id)
    if role is None:
        return state
    ended = replace(role, period=role.period.closed_at(e.ended_on))
    return replace(state, roles=with_item(state.roles, e.role_id, ended))


# ---------------------------------------------------------------- fast vårdkontakt


def _vardkontakt_requested(state: ListingState, e: ev.FastVardkontaktRequested) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        request = FastVardkontaktRequest(e.care_unit_id, e.effective_date)
        return replace(r, fast_vardkontakt_requests=r.fast_vardkontakt_requests + (request,))

    return _update_patient(state, e.patient_key, change)


def _vardkontakt_appointed(state: ListingState, e: ev.FastVardkontaktAppointed) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        appointed = FastVardkontakt(
            practitioner_id=e.practitioner_id,
            profession=e.profession,
            care_unit_id=e.care_unit_id,
            appointed_by_hsa_id=e.appointed_by_hsa_id,
            period=Period(e.appointed_on),
        )
        requests = tuple(
            replace(q, fulfilled_on=e.appointed_on)
            if q.fulfilled_on is None and q.care_unit_id == e.care_unit_id
            else q
            for q in r.fast_vardkontakt_requests
        )
        return replace(r, fast_vardkontakter=r.fast_vardkontakter + (appointed,), fast_vardkontakt_requests=requests)

    return _update_patient(state, e.patient_key, change)


def _vardkontakt_ended(state: ListingState, e: ev.FastVardkontaktEnded) -> ListingState:
    def change(r: PatientRecord) -> PatientRecord:
        return replace(
            r,
            fast_vardkontakter=tuple(
                replace(v, period=v.period.closed_at(e.ended_on), end_reason=e.reason)
                if v.period.is_open
                and v.practitioner_id == e.practitioner_id
                and v.care_unit_id == e.care_unit_id
                else v
                for v in r.fast_vardkontakter
            ),
        )

    return _update_patient(state, e.patient_key, change)


# ---------------------------------------------------------------- person


def _person(state: ListingState, patient_key: str, **changes: Any) -> ListingState:
    return _update_patient(state, patient_key, lambda r: replace(r, person=replace(r.person, **changes)))


def _deceased(state: ListingState, e: ev.PersonDeceased) -> ListingState:
    return _person(state, e.patient_key, population_status=PopulationStatus.DECEASED)


def _emigrated(state: ListingState, e: ev.PersonEmigrated) -> ListingState:
    return _person(state, e.patient_key, population_status=PopulationStatus.EMIGRATED)


def _moved_out(state: ListingState, e: ev.PersonMovedOutOfRegion) -> ListingState:
    return _person(state, e.patient_key, population_status=PopulationStatus.MOVED_OUT_OF_REGION)


def _protected(state: ListingState, e: ev.ProtectedIdentityRecorded) -> ListingState:
    return _person(state, e.patient_key, protected_identity=e.protected)


def _sabo(state: ListingState, e: ev.SaboResidenceRecorded) -> ListingState:
    return _person(state, e.patient_key, sabo_resident=e.resident)


def _unchanged(state: ListingState, _e: object) -> ListingState:
    return state


EVOLVERS: dict[type, Callable[[ListingState, Any], ListingState]] = {
    ev.ListingStarted: _listing_started,
    ev.ListingEnded: _listing_ended,
    ev.ListingAwaitingConsent: _awaiting_consent,
    ev.ListingConsentClosed: _consent_closed,
    ev.FastLakarkontaktAssigned: _flk_assigned,
    ev.FastLakarkontaktEnded: _flk_ended,
    ev.CoordinatingFastLakarkontaktChanged: _coordinating_changed,
    ev.FastLakarkontaktDeclined: _flk_declined,
    ev.PractitionerRoleEnded: _role_ended,
    ev.FastVardkontaktRequested: _vardkontakt_requested,
    ev.FastVardkontaktAppointed: _vardkontakt_appointed,
    ev.FastVardkontaktEnded: _vardkontakt_ended,
    ev.PersonDeceased: _deceased,
    ev.PersonEmigrated: _emigrated,
    ev.PersonMovedOutOfRegion: _moved_out,
    ev.ProtectedIdentityRecorded: _protected,
    ev.SaboResidenceRecorded: _sabo,
    ev.CapacityWarning: _unchanged,
    ev.ListingRejected: _unchanged,
    ev.AssignmentRejected: _unchanged,
    ev.RecordRejected: _unchanged,
}


def evolve(state: ListingState, event: ev.Event) -> ListingState:
    """Apply one event to the state."""
    try:
        evolver = EVOLVERS[type(event)]
    except KeyError:
        raise TypeError(f"evolve: unknown event type {type(event).__name__}") from None
    return evolver(state, event)


def evolve_all(state: ListingState, events: Iterable[ev.Event]) -> ListingState:
    for e in events:
        state = evolve(state, e)
    return state
