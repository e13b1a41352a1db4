"""Pure: how each consumed event type changes a patient's record (no I/O).

One handler per event type, registered in :data:`HANDLERS`. Every handler is idempotent
under redelivery in order (visit ids are deduplicated by the domain; listing events are
assignments; a risk assessment replaces the held band only when computed later), and returns the
*same object* when nothing changed.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from hashlib import blake2b
from typing import Any, Callable

from services.continuity.domain.patient import Visit, cancel_visit, record_visit, set_listing
from services.continuity.domain.settings import ContinuitySettings

from .record import MAIN_CARE_ELSEWHERE, MAIN_CARE_HERE, MAIN_CARE_NOT_RECORDED, PatientRecord

Handler = Callable[[PatientRecord, dict[str, Any], int, date, ContinuitySettings], PatientRecord]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _visit_recorded(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    visit = Visit(d["visit_id"], d["practitioner_id"], d["profession"], d["care_unit_id"],
                  parse_time(d["occurred_at"]), seq, d.get("contact_type"))
    state = record_visit(r.state, visit, as_of, s)
    return r if state is r.state else replace(r, state=state)


def _visit_cancelled(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    state = cancel_visit(r.state, d["visit_id"], as_of, s)
    return r if state is r.state else replace(r, state=state)


def _listing_started(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    unit = d["care_unit_id"]
    if unit == r.state.listing_unit_id:
        return r
    # The FLKs that end with the previous listing (F4) come as their own fast_lakarkontakt.ended events
    # before this one; an FLK at another unit (Kronoberg, seed 003) stays, and so does its coordination.
    return replace(r, state=set_listing(r.state, unit, r.state.fast_lakarkontakt))


def _listing_ended(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    if d["care_unit_id"] != r.state.listing_unit_id:
        return r  # an older listing ending after the new one started
    return replace(r, state=set_listing(r.state, None, r.state.fast_lakarkontakt))


def _flk_assigned(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    practitioner = d.get("practitioner_id")
    if d["list_kind"] != "doctor" or not practitioner:
        return r  # a fictive list counts as lacking an FLK (F3)
    state = set_listing(r.state, r.state.listing_unit_id, (*r.state.fast_lakarkontakt, practitioner))
    coordinating = practitioner if d.get("coordinating") or r.coordinating is None else r.coordinating
    if state is r.state and coordinating == r.coordinating:
        return r
    return replace(r, state=state, coordinating=coordinating)


def _flk_ended(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    practitioner = d.get("practitioner_id")
    if not practitioner or practitioner not in r.state.fast_lakarkontakt:
        return r
    remaining = tuple(p for p in r.state.fast_lakarkontakt if p != practitioner)
    coordinating = r.coordinating if r.coordinating != practitioner else None
    return replace(r, state=set_listing(r.state, r.state.listing_unit_id, remaining), coordinating=coordinating)


def _coordinating_changed(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    practitioner = d.get("practitioner_id")
    if not practitioner or practitioner not in r.state.fast_lakarkontakt or practitioner == r.coordinating:
        return r  # a fictive list, an FLK not (yet) known here, or no change
    return replace(r, coordinating=practitioner)


def main_care_code(data: dict, earlier: int = MAIN_CARE_NOT_RECORDED) -> int:
    """A residence fact's qualifier as kept in the record: ``main_care_in_residence`` true/false, or — the
    field is optional, older producers do not send it — what an earlier fact of the period recorded."""
    value = data.get("main_care_in_residence")
    if value is None:
        return earlier
    return MAIN_CARE_HERE if value else MAIN_CARE_ELSEWHERE


def _residence_recorded(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    digest = int.from_bytes(blake2b(d["residence_id"].encode(), digest_size=8).digest(), "little")
    lo = date.fromisoformat(d["sabo_from"]).toordinal()
    hi = date.fromisoformat(d["sabo_to"]).toordinal() if d.get("sabo_to") else 0
    earlier = next((e[3] for e in r.residences if e[0] == digest), MAIN_CARE_NOT_RECORDED)
    entry = (digest, lo, hi, main_care_code(d, earlier))
    kept = tuple(e for e in r.residences if e[0] != digest)
    if entry in r.residences:
        return r
    return replace(r, residences=tuple(sorted((*kept, entry), key=lambda e: e[1])))


def _risk_assessed(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    """The patient's current RUB band is the latest assessment's (by ``computed_at``, as the notifier
    decides it): an assessment computed at or before the one held changes nothing, so a redelivery or an
    older run arriving late leaves the band as it is (at an equal time the first one read stands)."""
    rub = d["rub"]
    if not 0 <= rub <= 5:
        raise ValueError("rub outside 0..5")
    at = (parse_time(d["computed_at"]) - _EPOCH) // _MICROSECOND
    if r.rub is not None and at <= r.rub_assessed_at:
        return r
    return replace(r, rub=rub, rub_assessed_at=at)


def _ignored(r: PatientRecord, d: dict, seq: int, as_of: date, s: ContinuitySettings) -> PatientRecord:
    return r


HANDLERS: dict[str, Handler] = {
    "visit.recorded.v1": _visit_recorded,
    "visit.cancelled.v1": _visit_cancelled,
    "listing.started.v1": _listing_started,
    "listing.ended.v1": _listing_ended,
    "fast_lakarkontakt.assigned.v1": _flk_assigned,
    "fast_lakarkontakt.ended.v1": _flk_ended,
    "fast_lakarkontakt.coordinating_changed.v1": _coordinating_changed,
    "residence.recorded.v1": _residence_recorded,
    "risk.assessed.v1": _risk_assessed,
    # on the consumed topics, but they do not change continuity
    "fast_lakarkontakt.declined.v1": _ignored,
    "fast_vardkontakt.appointed.v1": _ignored,
    "fast_vardkontakt.ended.v1": _ignored,
    "listing.rejected.v1": _ignored,
    "listing.awaiting_consent.v1": _ignored,  # P3: a minor's listing waiting for consent is no listing yet
    "listing.consent_closed.v1": _ignored,
}

#: The field of each consumed event that dates the fact (first 10 characters: the ISO date). A state that
#: holds a fact dated after a day is not that day's state (see processor.KNOWN_UNTIL). A residence is
#: dated by its end if it has one, a risk assessment by when the ACG run computed it. Types not here do
#: not change the state.
EFFECTIVE_DATE_FIELDS: dict[str, tuple[str, ...]] = {
    "visit.recorded.v1": ("occurred_at",),
    "visit.cancelled.v1": ("cancelled_at",),
    "listing.started.v1": ("started_on",),
    "listing.ended.v1": ("ended_on",),
    "fast_lakarkontakt.assigned.v1": ("assigned_on",),
    "fast_lakarkontakt.ended.v1": ("ended_on",),
    "fast_lakarkontakt.coordinating_changed.v1": ("changed_on",),
    "residence.recorded.v1": ("sabo_to", "sabo_from"),
    "risk.assessed.v1": ("computed_at",),
}


def effective_day(event_type: str, data: dict[str, Any]) -> str | None:
    """The ISO date (``YYYY-MM-DD``) of the fact an event states, or None."""
    for name in EFFECTIVE_DATE_FIELDS.get(event_type, ()):
        value = data.get(name)
        if value:
            return value[:10]
    return None


#: the event types whose topics the worker consumes
CONSUMED_EVENT_TYPES = ("visit.recorded.v1", "listing.started.v1", "residence.recorded.v1", "risk.assessed.v1")


def prune_residences(record: PatientRecord, lo_ordinal: int) -> PatientRecord:
    """Drop SÄBO periods that ended on or before ``lo_ordinal`` (keeps state bounded)."""
    kept = tuple(e for e in record.residences if e[2] == 0 or e[2] > lo_ordinal)
    return record if len(kept) == len(record.residences) else replace(record, residences=kept)
