"""Facts: what the event streams say, translated into domain inputs (not wire JSON)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from .vocabulary import FlkEndReason, ListingEndReason


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ListingStartedFact:
    patient_key: str
    listing_id: str
    unit_id: str
    started_at: datetime

    def __post_init__(self) -> None:
        _aware(self.started_at, "started_at")


@dataclass(frozen=True, slots=True)
class ListingEndedFact:
    patient_key: str
    listing_id: str
    unit_id: str
    ended_at: datetime
    reason: ListingEndReason = ListingEndReason.UNLISTED

    def __post_init__(self) -> None:
        _aware(self.ended_at, "ended_at")


@dataclass(frozen=True, slots=True)
class FlkAssignedFact:
    patient_key: str
    assignment_id: str
    unit_id: str
    practitioner_id: str
    assigned_at: datetime
    is_fictive: bool = False
    """True for the unit's fictive locum list ``<VC> Dr X`` (F3): not a real FLK."""

    def __post_init__(self) -> None:
        _aware(self.assigned_at, "assigned_at")


@dataclass(frozen=True, slots=True)
class FlkEndedFact:
    patient_key: str
    assignment_id: str
    unit_id: str
    ended_at: datetime
    reason: FlkEndReason

    def __post_init__(self) -> None:
        _aware(self.ended_at, "ended_at")


@dataclass(frozen=True, slots=True)
class FlkDeclinedFact:
    """The patient declined an FLK at the unit (``declined=False``: the patient withdrew it);
    ``suppresses_alerts``: the region's F7 policy, as the listing service decided it."""

    patient_key: str
    unit_id: str
    decided_at: datetime
    declined: bool = True
    suppresses_alerts: bool = True

    def __post_init__(self) -> None:
        _aware(self.decided_at, "decided_at")


@dataclass(frozen=True, slots=True)
class FvkAppointedFact:
    """A fast vårdkontakt (any profession, V1) was appointed for the patient at ``unit_id``."""

    patient_key: str
    appointment_id: str
    unit_id: str
    appointed_at: datetime

    def __post_init__(self) -> None:
        _aware(self.appointed_at, "appointed_at")


@dataclass(frozen=True, slots=True)
class FvkEndedFact:
    patient_key: str
    appointment_id: str
    unit_id: str
    ended_at: datetime

    def __post_init__(self) -> None:
        _aware(self.ended_at, "ended_at")


@dataclass(frozen=True, slots=True)
class RiskAssessedFact:
    patient_key: str
    rub: int
    computed_at: datetime

    def __post_init__(self) -> None:
        _aware(self.computed_at, "computed_at")
        if not 0 <= self.rub <= 5:
            raise ValueError("rub must be 0..5")


@dataclass(frozen=True, slots=True)
class ResidenceFact:
    """A SÄBO residence period ``[sabo_from, sabo_to)``; ``sabo_to=None`` while it lasts.

    Periods are identified by ``residence_id`` (default: ``sabo_from``); a later fact for the
    same period sets or corrects its end. An open-ended fact never reopens a closed period
    (a late redelivery of the start must not undo the end). ``main_care_in_residence`` is the G3
    qualifier (gets their main health care in the residence); None = not stated, which keeps
    what an earlier fact of the period stated.
    """

    patient_key: str
    sabo_from: datetime
    sabo_to: datetime | None = None
    residence_id: str | None = None
    main_care_in_residence: bool | None = None

    def __post_init__(self) -> None:
        _aware(self.sabo_from, "sabo_from")
        _aware(self.sabo_to, "sabo_to")
        if self.sabo_to is not None and self.sabo_to < self.sabo_from:
            raise ValueError("sabo_to must not be before sabo_from")

    @property
    def period_id(self) -> str:
        return self.residence_id or self.sabo_from.isoformat()


@dataclass(frozen=True, slots=True)
class PersonStatusFact:
    """Population register status (P1); the fact with the latest ``effective_at`` wins."""

    patient_key: str
    effective_at: datetime
    deceased: bool = False
    emigrated: bool = False

    def __post_init__(self) -> None:
        _aware(self.effective_at, "effective_at")


@dataclass(frozen=True, slots=True)
class Tick:
    """A wake-up: re-evaluate at ``now`` (opens gaps whose grace period has passed,
    resolves SÄBO periods that ended). ``apply`` evaluates at its ``now`` argument;
    pass the same value."""

    now: datetime
    patient_key: str | None = None

    def __post_init__(self) -> None:
        _aware(self.now, "now")


Fact: TypeAlias = (
    ListingStartedFact
    | ListingEndedFact
    | FlkAssignedFact
    | FlkEndedFact
    | FlkDeclinedFact
    | FvkAppointedFact
    | FvkEndedFact
    | RiskAssessedFact
    | ResidenceFact
    | PersonStatusFact
    | Tick
)
