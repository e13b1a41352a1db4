"""Consumed events -> domain facts (the anti-corruption layer between the wire and the domain).

Event dates (``started_on``, ``assigned_on``, ...) are local dates in the region's time zone.
A date becomes an instant as follows: when the event was produced on that same local day
(its CloudEvents ``time``), that instant is used, which keeps same-day facts in their real
order; otherwise (a back-dated or future-dated fact) local midnight of the date.
"""
from __future__ import annotations

from datetime import date, datetime, time
from typing import Callable
from zoneinfo import ZoneInfo

from flk.events.consumer import PermanentFailure
from flk.events.envelope import Envelope
from services.notifier.domain.care_gaps import (
    Fact,
    FlkAssignedFact,
    FlkDeclinedFact,
    FlkEndedFact,
    FlkEndReason,
    FvkAppointedFact,
    FvkEndedFact,
    ListingEndedFact,
    ListingEndReason,
    ListingStartedFact,
    PersonStatusFact,
    ResidenceFact,
    RiskAssessedFact,
)

#: the event types the notifier consumes and maps to facts (others on those topics are ignored)
CONSUMED_EVENT_TYPES = (
    "listing.started.v1",
    "listing.ended.v1",
    "fast_lakarkontakt.assigned.v1",
    "fast_lakarkontakt.ended.v1",
    "fast_lakarkontakt.declined.v1",
    "fast_vardkontakt.appointed.v1",
    "fast_vardkontakt.ended.v1",
    "risk.assessed.v1",
    "residence.recorded.v1",
    "person.registered.v1",
    "person.updated.v1",
)

_LISTING_END = {
    "relisted": ListingEndReason.RELISTED,
    "deceased": ListingEndReason.DECEASED,
    "emigrated": ListingEndReason.EMIGRATED,
}
_FLK_END = {
    "doctor_left": FlkEndReason.DOCTOR_LEFT,
    "relisted": FlkEndReason.RELISTED,
    "deceased": FlkEndReason.DECEASED,
    "emigrated": FlkEndReason.EMIGRATED,
    "ended_by_patient": FlkEndReason.PATIENT_REQUEST,
    "declined": FlkEndReason.PATIENT_REQUEST,
}


class UnusableValue(ValueError):
    """A schema-valid value the care-gap rules cannot use; the message names no value."""


class FactMapper:
    def __init__(self, timezone: str = "Europe/Stockholm") -> None:
        self.tz = ZoneInfo(timezone)
        self._map: dict[str, Callable[[Envelope], list[Fact]]] = {
            "listing.started.v1": self._listing_started,
            "listing.ended.v1": self._listing_ended,
            "fast_lakarkontakt.assigned.v1": self._flk_assigned,
            "fast_lakarkontakt.ended.v1": self._flk_ended,
            "fast_lakarkontakt.declined.v1": self._flk_declined,
            "fast_vardkontakt.appointed.v1": self._fvk_appointed,
            "fast_vardkontakt.ended.v1": self._fvk_ended,
            "risk.assessed.v1": self._risk_assessed,
            "residence.recorded.v1": self._residence,
            "person.registered.v1": self._person,
            "person.updated.v1": self._person,
        }

    def facts(self, envelope: Envelope) -> list[Fact]:
        """The facts an event carries; [] for event types that do not concern care gaps.

        A schema-valid event whose values the rules cannot use (a SÄBO period that ends before it
        starts, ...) is a :class:`PermanentFailure`: dead-lettered at once with a reason that
        names no value, not retried as if it were a bug."""
        mapper = self._map.get(envelope.event_type)
        if mapper is None:
            return []
        try:
            return mapper(envelope)
        except UnusableValue as exc:
            raise PermanentFailure(f"{envelope.event_type}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise PermanentFailure(f"{envelope.event_type}: a value the care-gap rules cannot use "
                                   f"({type(exc).__name__})") from None

    # ---- helpers ---------------------------------------------------------------------------

    def _at(self, day: str, envelope: Envelope) -> datetime:
        d = date.fromisoformat(day)
        produced = envelope.time
        if produced is not None and produced.tzinfo is not None and produced.astimezone(self.tz).date() == d:
            return produced
        return datetime.combine(d, time(0), tzinfo=self.tz)

    def _midnight(self, day: str) -> datetime:
        return datetime.combine(date.fromisoformat(day), time(0), tzinfo=self.tz)

    # ---- mappers ---------------------------------------------------------------------------

    def _listing_started(self, e: Envelope) -> list[Fact]:
        d = e.data
        return [ListingStartedFact(d["patient_key"], d["listing_id"], d["care_unit_id"], self._at(d["started_on"], e))]

    def _listing_ended(self, e: Envelope) -> list[Fact]:
        d = e.data
        reason = _LISTING_END.get(d["reason"], ListingEndReason.UNLISTED)
        return [ListingEndedFact(d["patient_key"], d["listing_id"], d["care_unit_id"], self._at(d["ended_on"], e), reason)]

    def _flk_assigned(self, e: Envelope) -> list[Fact]:
        d = e.data
        fictive = d["list_kind"] == "fictive"
        practitioner = d.get("practitioner_id") or f"list:{d['list_id']}"
        return [FlkAssignedFact(d["patient_key"], d["assignment_id"], d["care_unit_id"], practitioner,
                                self._at(d["assigned_on"], e), is_fictive=fictive)]

    def _flk_ended(self, e: Envelope) -> list[Fact]:
        d = e.data
        reason = _FLK_END.get(d["reason"], FlkEndReason.OTHER)
        return [FlkEndedFact(d["patient_key"], d["assignment_id"], d["care_unit_id"], self._at(d["ended_on"], e), reason)]

    def _flk_declined(self, e: Envelope) -> list[Fact]:
        d = e.data
        return [FlkDeclinedFact(d["patient_key"], d["care_unit_id"], self._at(d["declined_on"], e), declined=True,
                                suppresses_alerts=d.get("suppresses_alerts", True))]

    def _fvk_appointed(self, e: Envelope) -> list[Fact]:
        d = e.data
        return [FvkAppointedFact(d["patient_key"], d["appointment_id"], d["care_unit_id"], self._at(d["appointed_on"], e))]

    def _fvk_ended(self, e: Envelope) -> list[Fact]:
        d = e.data
        return [FvkEndedFact(d["patient_key"], d["appointment_id"], d["care_unit_id"], self._at(d["ended_on"], e))]

    def _risk_assessed(self, e: Envelope) -> list[Fact]:
        d = e.data
        return [RiskAssessedFact(d["patient_key"], d["rub"], datetime.fromisoformat(d["computed_at"]))]

    def _residence(self, e: Envelope) -> list[Fact]:
        d = e.data
        to = d.get("sabo_to")
        if to and to < d["sabo_from"]:  # ISO dates compare as text
            raise UnusableValue("sabo_to is before sabo_from")
        return [ResidenceFact(d["patient_key"], self._midnight(d["sabo_from"]),
                              self._midnight(to) if to else None, residence_id=d["residence_id"],
                              main_care_in_residence=d.get("main_care_in_residence"))]

    def _person(self, e: Envelope) -> list[Fact]:
        d = e.data
        status = d["status"]
        return [PersonStatusFact(d["patient_key"], datetime.fromisoformat(d["updated_at"]),
                                 deceased=status == "deceased", emigrated=status == "emigrated")]
