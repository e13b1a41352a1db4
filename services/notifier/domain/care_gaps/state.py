"""One patient's care state, as the facts left it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from .policy import CarePolicy
from .vocabulary import FlkEndReason, GapCause, GapKind, ListingEndReason

#: Namespace of every care-gap id (uuid5). Never change it: ids would change on replay.
CARE_GAP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flk-primarvard:notifier:care-gap")

#: How many risk assessments are kept per patient (ACG runs are periodic, a few per year).
RISK_HISTORY_LIMIT = 24




@dataclass(frozen=True, slots=True)
class Listing:
    listing_id: str
    unit_id: str
    started_at: datetime
    lost_flk_by_relisting: bool = False
    """The patient had a real FLK at the previous unit that ended by this relisting."""


@dataclass(frozen=True, slots=True)
class ListingEnd:
    listing_id: str
    unit_id: str
    started_at: datetime
    reason: ListingEndReason
    ended_at: datetime
    had_real_flk: bool


@dataclass(frozen=True, slots=True)
class FlkAssignment:
    assignment_id: str
    unit_id: str
    practitioner_id: str
    is_fictive: bool
    assigned_at: datetime


@dataclass(frozen=True, slots=True)
class FlkEnd:
    reason: FlkEndReason
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class Decline:
    unit_id: str
    decided_at: datetime
    declined: bool
    suppresses_alerts: bool = True


@dataclass(frozen=True, slots=True)
class FvkAppointment:
    appointment_id: str
    unit_id: str
    appointed_at: datetime


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    rub: int
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class SaboPeriod:
    period_id: str
    sabo_from: datetime
    sabo_to: datetime | None
    main_care_in_residence: bool | None = None
    """The G3 qualifier; None = not recorded (states stored before it existed decode so)."""

    def covers(self, moment: datetime) -> bool:
        return self.sabo_from <= moment and (self.sabo_to is None or moment < self.sabo_to)

    def qualifies(self, policy: CarePolicy) -> bool:
        """Whether living here makes the resident an alert cohort member (G3's population: main care
        in the residence or not recorded; also elsewhere when the profile says so)."""
        return policy.include_sabo and (self.main_care_in_residence is not False
                                        or policy.include_sabo_main_care_elsewhere)


@dataclass(frozen=True, slots=True)
class PersonStatus:
    deceased: bool
    emigrated: bool
    effective_at: datetime


@dataclass(frozen=True, slots=True)
class OpenGap:
    gap_id: uuid.UUID
    unit_id: str
    listing_id: str
    cause: GapCause
    rub: int | None
    sabo: bool
    opened_at: datetime
    seq_in_episode: int = 1
    """1 for the first gap of the listing episode, 2 for the next, ... (counted per kind)"""
    kind: GapKind = GapKind.FAST_LAKARKONTAKT


@dataclass(frozen=True, slots=True)
class _LastGap:
    gap_id: uuid.UUID
    listing_id: str
    resolved_at: datetime
    seq_in_episode: int


@dataclass(frozen=True, slots=True)
class PatientCareState:
    """Everything gap detection knows about one patient (keyed by the pseudonymous key)."""

    patient_key: str
    listing: Listing | None = None
    closed_listing_ids: frozenset[str] = frozenset()
    last_listing_end: ListingEnd | None = None
    assignments: tuple[FlkAssignment, ...] = ()
    """Active FLK assignments (real and fictive)."""
    ended_assignment_ids: frozenset[str] = frozenset()
    last_real_flk_end: FlkEnd | None = None
    """How the last real FLK of the current listing episode ended."""
    decline: Decline | None = None
    risk_history: tuple[RiskAssessment, ...] = ()
    """Assessments sorted by ``computed_at``; the last one is the latest."""
    sabo_periods: tuple[SaboPeriod, ...] = ()
    status: PersonStatus | None = None
    open_gap: OpenGap | None = None
    last_gap: _LastGap | None = None
    # fast vårdkontakt (state format 2: every field below defaults, so a state stored before
    # them decodes unchanged, and a state without them encodes as before)
    fvk_appointments: tuple[FvkAppointment, ...] = ()
    """Open fast-vårdkontakt appointments (at any unit)."""
    ended_fvk_ids: frozenset[str] = frozenset()
    last_fvk_ended_at: datetime | None = None
    """When the patient's last fast vårdkontakt ended (the cause of a later gap)."""
    open_fvk_gap: OpenGap | None = None
    last_fvk_gap: _LastGap | None = None

    @property
    def latest_risk(self) -> RiskAssessment | None:
        return self.risk_history[-1] if self.risk_history else None

    @property
    def deceased(self) -> bool:
        return self.status is not None and self.status.deceased

    @property
    def emigrated(self) -> bool:
        return self.status is not None and self.status.emigrated

    def is_sabo_resident(self, moment: datetime) -> bool:
        return any(p.covers(moment) for p in self.sabo_periods)

    def qualifying_sabo_periods(self, moment: datetime, policy: CarePolicy) -> tuple[SaboPeriod, ...]:
        """The SÄBO periods at ``moment`` that make the patient qualify (see :meth:`SaboPeriod.qualifies`)."""
        return tuple(p for p in self.sabo_periods if p.covers(moment) and p.qualifies(policy))

    def active_at_listing_unit(self) -> tuple[FlkAssignment, ...]:
        if self.listing is None:
            return ()
        return tuple(a for a in self.assignments if a.unit_id == self.listing.unit_id)

    def has_real_flk(self) -> bool:
        """An active FLK at the listing unit that is a real doctor (not a fictive list)."""
        return any(not a.is_fictive for a in self.active_at_listing_unit())

    def has_fast_vardkontakt(self) -> bool:
        return bool(self.fvk_appointments)

    @property
    def declined_at_listing_unit(self) -> bool:
        return (
            self.listing is not None
            and self.decline is not None
            and self.decline.declined
            and self.decline.unit_id == self.listing.unit_id
        )


def initial_state(patient_key: str) -> PatientCareState:
    return PatientCareState(patient_key=patient_key)


def care_gap_id(patient_key: str, unit_id: str, listing_id: str, opened_at: datetime,
                kind: GapKind = GapKind.FAST_LAKARKONTAKT) -> uuid.UUID:
    """Deterministic id of a gap: the same facts replayed give the same id. An FLK gap's id is
    what it was before gap kinds existed; a fast-vårdkontakt gap's name adds its kind."""
    stamp = opened_at.astimezone(timezone.utc).isoformat()
    name = f"{patient_key}|{unit_id}|{listing_id}|{stamp}"
    if kind is not GapKind.FAST_LAKARKONTAKT:
        name += f"|{kind.value}"
    return uuid.uuid5(CARE_GAP_NAMESPACE, name)
