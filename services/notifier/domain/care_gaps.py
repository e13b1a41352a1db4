"""Care-gap detection: the pure rules (no I/O).

A *care gap* (vårdlucka) is a patient with a large care need who is listed at a care unit
(vårdcentral) and has no real fast läkarkontakt (FLK) there (domain brief §6, F3, F7, F8, P1):

* the patient qualifies when the **latest** risk assessment has ``rub >= policy.rub_threshold``
  (RUB 4–5 by default; assessments are versioned by ``computed_at``, a late older one never
  overrides a newer one) **or** the patient lives in a SÄBO (``policy.include_sabo``) and is in
  G3's population: gets their main health care there, or that was not recorded (a resident
  recorded as getting it elsewhere qualifies only by RUB, unless
  ``policy.include_sabo_main_care_elsewhere``);
* the patient lacks an FLK when no active, non-fictive FLK assignment exists at the listing unit:
  none was ever assigned, only the unit's fictive locum list ``<VC> Dr X`` (F3), or the FLK
  ended (the doctor left, F8, or another reason);
* a patient who declined an FLK (F7) is not a gap when the region's profile says a decline
  suppresses alerts (the listing service decides it and the decline event carries it);
* dead or emigrated persons never have gaps (P1);
* a gap opens only once ``policy.grace_days`` have passed since the listing started.

A second kind of gap, the **fast-vårdkontakt gap** (:attr:`GapKind.FAST_VARDKONTAKT`), exists in
regions whose profile requires a fast vårdkontakt for high-need patients (Kalmar, seed 004:
"Vårdenheten ska säkerställa att patienter med ett stort vårdbehov identifierat med hjälp av RUB
har en fast läkarkontakt ... [och] en fast vårdkontakt"): a listed patient whose latest RUB is in
``policy.fast_vardkontakt_rub_bands`` (empty: the region does not require one) and who has no
open fast vårdkontakt (at any unit, as the listing register counts it). SÄBO residence and a
declined FLK do not matter to it. The same grace period, the same resolutions (relisted, listing
ended, deceased, emigrated, no longer qualifies) and ``fast_vardkontakt_appointed``. The two
kinds are independent: a patient may have one open gap of each kind (one per patient, unit and
kind); their ids differ by kind.

The state of one patient is a frozen :class:`PatientCareState`; facts from the event streams
are applied with :func:`apply`, which returns the new state and the :class:`CareGapOpened` /
:class:`CareGapResolved` events. Time is always explicit (``now``); the service sends a
:class:`Tick` at :func:`next_wakeup` so gaps open when a grace period ends.

Timing choices (documented in the README):

* ``opened_at`` is the moment the gap *condition* became true, never before the end of the
  grace period: ``max(listing start + grace, lacking-FLK since, qualifying since)``, clamped
  to ``now`` (it is never in the future). The gap is *emitted* by the first fact or tick
  processed at or after that moment. Its age (and escalation) counts from ``opened_at``.
* ``resolved_at`` is the effective time of the fact that closed it, clamped to
  ``[opened_at, now]``.
* Gap ids are ``uuid5(patient_key, unit_id, listing_id, opened_at)``: a replay of the same
  facts gives the same ids, and a second gap in the same listing episode gets another id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import TypeAlias

__all__ = [
    "CARE_GAP_NAMESPACE",
    "CarePolicy",
    "CareGapOpened",
    "CareGapResolved",
    "Decline",
    "Fact",
    "FlkAssignedFact",
    "FlkAssignment",
    "FlkDeclinedFact",
    "FlkEnd",
    "FlkEndReason",
    "FlkEndedFact",
    "FvkAppointedFact",
    "FvkAppointment",
    "FvkEndedFact",
    "GapCause",
    "GapEvent",
    "GapKind",
    "GapResolution",
    "Listing",
    "ListingEnd",
    "ListingEndReason",
    "ListingEndedFact",
    "ListingStartedFact",
    "OpenGap",
    "PatientCareState",
    "PersonStatus",
    "PersonStatusFact",
    "ResidenceFact",
    "RiskAssessedFact",
    "RiskAssessment",
    "SaboPeriod",
    "Tick",
    "apply",
    "care_gap_id",
    "initial_state",
    "next_wakeup",
    "tick",
]

#: Namespace of every care-gap id (uuid5). Never change it: ids would change on replay.
CARE_GAP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flk-primarvard:notifier:care-gap")

#: How many risk assessments are kept per patient (ACG runs are periodic, a few per year).
RISK_HISTORY_LIMIT = 24


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


class GapKind(StrEnum):
    """What the patient lacks (the ``kind`` of the care_gap contracts; absent = FLK)."""

    FAST_LAKARKONTAKT = "fast_lakarkontakt"
    FAST_VARDKONTAKT = "fast_vardkontakt"


class GapCause(StrEnum):
    """Why a qualifying patient lacks a real FLK at the listing unit, or (the last two) a fast
    vårdkontakt (recorded at opening)."""

    NEVER_ASSIGNED = "never_assigned"
    """No FLK in this listing episode, and none was lost by relisting."""
    LOCUM_LIST = "locum_list"
    """Only on the unit's fictive locum list ``<VC> Dr X`` (F3)."""
    DOCTOR_LEFT = "doctor_left"
    """The FLK's role ended at the unit (F8)."""
    RELISTED = "relisted"
    """Had a real FLK at the previous unit, which ended when the patient relisted here (F4)."""
    FLK_ENDED = "flk_ended"
    """The FLK assignment ended for another reason (e.g. the patient asked to change)."""
    NO_FAST_VARDKONTAKT = "no_fast_vardkontakt"
    """Fast-vårdkontakt gap: none has been appointed (none known to the notifier)."""
    FAST_VARDKONTAKT_ENDED = "fast_vardkontakt_ended"
    """Fast-vårdkontakt gap: the patient had one and it ended."""


class GapResolution(StrEnum):
    FAST_LAKARKONTAKT_ASSIGNED = "fast_lakarkontakt_assigned"
    RELISTED = "relisted"
    LISTING_ENDED = "listing_ended"
    """The listing ended without a new one (e.g. moved out of the region)."""
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    NO_LONGER_QUALIFIES = "no_longer_qualifies"
    DECLINED = "declined"
    FAST_VARDKONTAKT_APPOINTED = "fast_vardkontakt_appointed"


class FlkEndReason(StrEnum):
    DOCTOR_LEFT = "doctor_left"
    RELISTED = "relisted"
    PATIENT_REQUEST = "patient_request"
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    OTHER = "other"


class ListingEndReason(StrEnum):
    RELISTED = "relisted"
    DECEASED = "deceased"
    EMIGRATED = "emigrated"
    UNLISTED = "unlisted"
    """Any other end (moved out of the region's responsibility, administrative)."""


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CarePolicy:
    """The per-region settings of gap detection (part of a policy profile).

    ``grace_days`` (default 14): a gap opens only when this many days (exact 24 h periods)
    have passed since the listing started, giving the unit time to assign an FLK.
    ``rub_threshold`` (default 4): RUB 4 and 5 are high care need. (Whether a declined FLK, F7,
    stops alerts is not a setting here: the region's listing profile decides it, and the decline
    event says so: one setting, not two that could disagree.)
    ``include_sabo`` (default True): SÄBO residents qualify whatever their RUB (G3).
    ``include_sabo_main_care_elsewhere`` (default False): whether a SÄBO resident recorded as
    getting their main health care elsewhere (not "i boendet", seed 001) qualifies by SÄBO too.
    By default they do not: G3 does not count them, so an alert would chase a figure that does not
    include them (they still qualify by RUB). A resident whose qualifier is not recorded qualifies,
    as G3 counts them.
    """

    grace_days: int = 14
    rub_threshold: int = 4
    include_sabo: bool = True
    include_sabo_main_care_elsewhere: bool = False
    fast_vardkontakt_rub_bands: frozenset[int] = frozenset()
    """The RUB bands whose listed patients must have a fast vårdkontakt (fast-vårdkontakt gaps);
    empty (the default): the region does not require one. Not a notifier setting of its own: the
    service takes it from the region's listing policy profile (``rub_high_need_bands`` when
    ``rub_high_need_requires_fast_vardkontakt``), see ``NotifierSettings.care_policy``."""

    def __post_init__(self) -> None:
        if self.grace_days < 0:
            raise ValueError("grace_days must be >= 0")
        if not 0 <= self.rub_threshold <= 5:
            raise ValueError("rub_threshold must be a RUB band 0..5")
        object.__setattr__(self, "fast_vardkontakt_rub_bands", frozenset(self.fast_vardkontakt_rub_bands))
        if any(not 0 <= b <= 5 for b in self.fast_vardkontakt_rub_bands):
            raise ValueError("fast_vardkontakt_rub_bands must be RUB bands 0..5")

    @property
    def requires_fast_vardkontakt(self) -> bool:
        return bool(self.fast_vardkontakt_rub_bands)

    @property
    def grace(self) -> timedelta:
        return timedelta(days=self.grace_days)


# --------------------------------------------------------------------------------------------
# Facts (inputs; domain facts translated from the event streams, not wire JSON)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Events (outputs)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CareGapOpened:
    gap_id: uuid.UUID
    patient_key: str
    unit_id: str
    cause: GapCause
    rub: int | None
    """The latest RUB when the gap opened (None: no assessment; the patient is a SÄBO resident)."""
    sabo: bool
    opened_at: datetime
    kind: GapKind = GapKind.FAST_LAKARKONTAKT


@dataclass(frozen=True, slots=True)
class CareGapResolved:
    gap_id: uuid.UUID
    patient_key: str
    unit_id: str
    resolution: GapResolution
    resolved_at: datetime
    kind: GapKind = GapKind.FAST_LAKARKONTAKT


GapEvent: TypeAlias = CareGapOpened | CareGapResolved


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------------------------

def apply(
    state: PatientCareState, fact: Fact, now: datetime, policy: CarePolicy = CarePolicy()
) -> tuple[PatientCareState, list[GapEvent]]:
    """Apply one fact at processing time ``now``; return the new state and the gap events.

    Idempotent: applying the same fact again (at the same ``now``) changes nothing and emits
    nothing. At most one gap of each kind is open per patient (and so per patient and unit).
    """
    _aware(now, "now")
    key = getattr(fact, "patient_key", None)
    if key is not None and key != state.patient_key:
        raise ValueError("fact is for another patient")
    updated = _update(state, fact)
    return _evaluate(updated, now, policy, _effective_at(fact, now))


def tick(
    state: PatientCareState, now: datetime, policy: CarePolicy = CarePolicy()
) -> tuple[PatientCareState, list[GapEvent]]:
    """Shorthand for ``apply(state, Tick(now), now, policy)``."""
    return apply(state, Tick(now=now), now, policy)


def next_wakeup(
    state: PatientCareState, now: datetime, policy: CarePolicy = CarePolicy()
) -> datetime | None:
    """The earliest moment after ``now`` at which a :class:`Tick` may change something
    without any new fact (the end of the grace period, a SÄBO period starting or ending)."""
    candidates: list[datetime] = []
    if state.listing is not None and (
        state.open_gap is None or (policy.requires_fast_vardkontakt and state.open_fvk_gap is None)
    ):
        grace_end = state.listing.started_at + policy.grace
        if grace_end > now:
            candidates.append(grace_end)
    if policy.include_sabo:
        for period in state.sabo_periods:
            for boundary in (period.sabo_from, period.sabo_to):
                if boundary is not None and boundary > now:
                    candidates.append(boundary)
    return min(candidates) if candidates else None


def _effective_at(fact: Fact, now: datetime) -> datetime:
    match fact:
        case ListingStartedFact(started_at=t):
            return t
        case ListingEndedFact(ended_at=t) | FlkEndedFact(ended_at=t):
            return t
        case FlkAssignedFact(assigned_at=t):
            return t
        case FlkDeclinedFact(decided_at=t):
            return t
        case FvkAppointedFact(appointed_at=t) | FvkEndedFact(ended_at=t):
            return t
        case RiskAssessedFact(computed_at=t):
            return t
        case ResidenceFact(sabo_from=start, sabo_to=end):
            return end if end is not None and end <= now else start
        case PersonStatusFact(effective_at=t):
            return t
        case _:
            return now


# ---- state updates (fact -> state), each idempotent ----------------------------------------


def _update(state: PatientCareState, fact: Fact) -> PatientCareState:
    match fact:
        case ListingStartedFact():
            return _listing_started(state, fact)
        case ListingEndedFact():
            return _listing_ended(state, fact)
        case FlkAssignedFact():
            return _flk_assigned(state, fact)
        case FlkEndedFact():
            return _flk_ended(state, fact)
        case FlkDeclinedFact():
            return _flk_declined(state, fact)
        case FvkAppointedFact():
            return _fvk_appointed(state, fact)
        case FvkEndedFact():
            return _fvk_ended(state, fact)
        case RiskAssessedFact():
            return _risk_assessed(state, fact)
        case ResidenceFact():
            return _residence(state, fact)
        case PersonStatusFact():
            return _person_status(state, fact)
        case Tick():
            return state
    raise TypeError(f"unknown fact {type(fact).__name__}")


def _had_real_flk(state: PatientCareState) -> bool:
    """At the end of the current listing episode: a real FLK was active, or had just
    ended because of the relisting (the FLK stream may be ahead of the listing stream)."""
    if state.has_real_flk():
        return True
    end = state.last_real_flk_end
    return end is not None and end.reason is FlkEndReason.RELISTED


def _close_episode(
    state: PatientCareState, reason: ListingEndReason, ended_at: datetime
) -> PatientCareState:
    """End the current listing episode; its FLK assignments end with it (F4)."""
    listing = state.listing
    assert listing is not None
    ending = tuple(a for a in state.assignments if a.unit_id == listing.unit_id)
    return replace(
        state,
        listing=None,
        closed_listing_ids=state.closed_listing_ids | {listing.listing_id},
        last_listing_end=ListingEnd(
            listing_id=listing.listing_id,
            unit_id=listing.unit_id,
            started_at=listing.started_at,
            reason=reason,
            ended_at=ended_at,
            had_real_flk=_had_real_flk(state),
        ),
        assignments=tuple(a for a in state.assignments if a.unit_id != listing.unit_id),
        ended_assignment_ids=state.ended_assignment_ids | {a.assignment_id for a in ending},
        last_real_flk_end=None,
        decline=None,
    )


def _listing_started(state: PatientCareState, fact: ListingStartedFact) -> PatientCareState:
    current = state.listing
    if fact.listing_id in state.closed_listing_ids:
        return state  # a late redelivery of an episode that already ended
    if current is not None and current.listing_id == fact.listing_id:
        return state  # redelivery
    newest_start = current.started_at if current is not None else (
        state.last_listing_end.started_at if state.last_listing_end is not None else None
    )
    if newest_start is not None and fact.started_at < newest_start:
        # An older episode arriving late: it was superseded by a newer one (L1).
        return replace(state, closed_listing_ids=state.closed_listing_ids | {fact.listing_id})

    if current is not None and current.unit_id == fact.unit_id:
        # A new listing record at the same unit continues the episode (no FLK change, F4).
        return replace(
            state,
            listing=replace(current, listing_id=fact.listing_id),
            closed_listing_ids=state.closed_listing_ids | {current.listing_id},
        )

    if current is not None:
        # L1: the new listing ends the previous one atomically; its FLKs end (F4, relisted).
        state = _close_episode(state, ListingEndReason.RELISTED, fact.started_at)

    previous = state.last_listing_end
    lost_flk = (
        previous is not None
        and previous.reason is ListingEndReason.RELISTED
        and previous.unit_id != fact.unit_id
        and previous.had_real_flk
    )
    # The previous unit's assignments ended with its episode (F4, _close_episode). Those at other
    # units stay: an FLK where the patient's main contact is (Kronoberg, seed 003) outlives a
    # relisting, and is the listing unit's FLK if the patient is relisted at its unit. Assignments for
    # the new unit that arrived before the listing event are kept as well.
    decline = state.decline
    if decline is not None and not (
        decline.unit_id == fact.unit_id and decline.decided_at >= fact.started_at
    ):
        decline = None
    return replace(
        state,
        listing=Listing(
            listing_id=fact.listing_id,
            unit_id=fact.unit_id,
            started_at=fact.started_at,
            lost_flk_by_relisting=lost_flk,
        ),
        assignments=state.assignments,
        last_real_flk_end=None,
        decline=decline,
    )


def _listing_ended(state: PatientCareState, fact: ListingEndedFact) -> PatientCareState:
    if state.listing is not None and state.listing.listing_id == fact.listing_id:
        return _close_episode(state, fact.reason, fact.ended_at)
    if fact.listing_id in state.closed_listing_ids:
        return state
    # The end of an episode we have not seen start (yet): remember it so its start is ignored.
    return replace(state, closed_listing_ids=state.closed_listing_ids | {fact.listing_id})


def _flk_assigned(state: PatientCareState, fact: FlkAssignedFact) -> PatientCareState:
    if fact.assignment_id in state.ended_assignment_ids:
        return state  # ended already (redelivery, or the end arrived first)
    if any(a.assignment_id == fact.assignment_id for a in state.assignments):
        return state
    listing = state.listing
    if listing is not None and fact.unit_id != listing.unit_id and fact.assigned_at < listing.started_at:
        # An assignment at a previous unit arriving late: it ended with the relisting (F4).
        return replace(state, ended_assignment_ids=state.ended_assignment_ids | {fact.assignment_id})
    assignment = FlkAssignment(
        assignment_id=fact.assignment_id,
        unit_id=fact.unit_id,
        practitioner_id=fact.practitioner_id,
        is_fictive=fact.is_fictive,
        assigned_at=fact.assigned_at,
    )
    return replace(state, assignments=state.assignments + (assignment,))


def _flk_ended(state: PatientCareState, fact: FlkEndedFact) -> PatientCareState:
    if fact.assignment_id in state.ended_assignment_ids:
        return state
    ended = next((a for a in state.assignments if a.assignment_id == fact.assignment_id), None)
    state = replace(
        state,
        assignments=tuple(a for a in state.assignments if a.assignment_id != fact.assignment_id),
        ended_assignment_ids=state.ended_assignment_ids | {fact.assignment_id},
    )
    if (
        ended is not None
        and not ended.is_fictive
        and state.listing is not None
        and ended.unit_id == state.listing.unit_id
    ):
        state = replace(state, last_real_flk_end=FlkEnd(reason=fact.reason, ended_at=fact.ended_at))
    return state


def _flk_declined(state: PatientCareState, fact: FlkDeclinedFact) -> PatientCareState:
    current = state.decline
    if current is not None and current.unit_id == fact.unit_id and fact.decided_at <= current.decided_at:
        return state  # redelivery or an older decision arriving late
    return replace(
        state, decline=Decline(unit_id=fact.unit_id, decided_at=fact.decided_at, declined=fact.declined,
                               suppresses_alerts=fact.suppresses_alerts)
    )


def _fvk_appointed(state: PatientCareState, fact: FvkAppointedFact) -> PatientCareState:
    if fact.appointment_id in state.ended_fvk_ids:
        return state  # ended already (redelivery, or the end arrived first)
    if any(a.appointment_id == fact.appointment_id for a in state.fvk_appointments):
        return state
    appointment = FvkAppointment(fact.appointment_id, fact.unit_id, fact.appointed_at)
    return replace(state, fvk_appointments=state.fvk_appointments + (appointment,))


def _fvk_ended(state: PatientCareState, fact: FvkEndedFact) -> PatientCareState:
    if fact.appointment_id in state.ended_fvk_ids:
        return state
    was_open = any(a.appointment_id == fact.appointment_id for a in state.fvk_appointments)
    state = replace(
        state,
        fvk_appointments=tuple(a for a in state.fvk_appointments if a.appointment_id != fact.appointment_id),
        ended_fvk_ids=state.ended_fvk_ids | {fact.appointment_id},
    )
    if was_open and (state.last_fvk_ended_at is None or fact.ended_at > state.last_fvk_ended_at):
        state = replace(state, last_fvk_ended_at=fact.ended_at)
    return state


def _risk_assessed(state: PatientCareState, fact: RiskAssessedFact) -> PatientCareState:
    if any(r.computed_at == fact.computed_at for r in state.risk_history):
        return state  # the same version (first writer wins): redelivery
    history = sorted(
        state.risk_history + (RiskAssessment(rub=fact.rub, computed_at=fact.computed_at),),
        key=lambda r: r.computed_at,
    )
    return replace(state, risk_history=tuple(history[-RISK_HISTORY_LIMIT:]))


def _residence(state: PatientCareState, fact: ResidenceFact) -> PatientCareState:
    period_id = fact.period_id
    existing = next((p for p in state.sabo_periods if p.period_id == period_id), None)
    main_care = fact.main_care_in_residence
    if main_care is None and existing is not None:
        main_care = existing.main_care_in_residence  # not stated: keep what was recorded
    new = SaboPeriod(period_id=period_id, sabo_from=fact.sabo_from, sabo_to=fact.sabo_to,
                     main_care_in_residence=main_care)
    if existing is not None:
        if existing == new:
            return state
        if fact.sabo_to is None and existing.sabo_to is not None:
            return state  # never reopen a closed period with a start-only fact
    others = tuple(p for p in state.sabo_periods if p.period_id != period_id)
    periods = tuple(sorted(others + (new,), key=lambda p: (p.sabo_from, p.period_id)))
    return replace(state, sabo_periods=periods)


def _person_status(state: PatientCareState, fact: PersonStatusFact) -> PatientCareState:
    current = state.status
    if current is not None and fact.effective_at < current.effective_at:
        return state
    new = PersonStatus(deceased=fact.deceased, emigrated=fact.emigrated, effective_at=fact.effective_at)
    if current == new:
        return state
    if current is not None and current.deceased and fact.effective_at == current.effective_at:
        return state  # same instant, conflicting: death is not undone by an equal-time fact
    return replace(state, status=new)


# ---- evaluation (state -> events) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Wanted:
    cause: GapCause
    rub: int | None
    sabo: bool
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class _NotWanted:
    resolution: GapResolution | None
    """Why there is no gap; None: not yet (grace period), an open gap stays open."""


def _qualifying_since(state: PatientCareState, now: datetime, policy: CarePolicy) -> datetime | None:
    """Since when the patient has qualified (high RUB or SÄBO), None if not qualifying now."""
    since: list[datetime] = []
    history = state.risk_history
    if history and history[-1].rub >= policy.rub_threshold:
        start = history[-1].computed_at
        for assessment in reversed(history):
            if assessment.rub < policy.rub_threshold:
                break
            start = assessment.computed_at
        since.append(start)
    since.extend(p.sabo_from for p in state.qualifying_sabo_periods(now, policy))
    return min(since) if since else None


def _cause(state: PatientCareState) -> GapCause:
    if state.active_at_listing_unit():  # only fictive ones, since there is no real FLK
        return GapCause.LOCUM_LIST
    end = state.last_real_flk_end
    if end is not None:
        if end.reason is FlkEndReason.DOCTOR_LEFT:
            return GapCause.DOCTOR_LEFT
        return GapCause.FLK_ENDED
    assert state.listing is not None
    if state.listing.lost_flk_by_relisting:
        return GapCause.RELISTED
    return GapCause.NEVER_ASSIGNED


def _resolution_without_listing(state: PatientCareState) -> GapResolution:
    end = state.last_listing_end
    if end is None:
        return GapResolution.LISTING_ENDED
    return {
        ListingEndReason.RELISTED: GapResolution.RELISTED,
        ListingEndReason.DECEASED: GapResolution.DECEASED,
        ListingEndReason.EMIGRATED: GapResolution.EMIGRATED,
        ListingEndReason.UNLISTED: GapResolution.LISTING_ENDED,
    }[end.reason]


def _wanted(state: PatientCareState, now: datetime, policy: CarePolicy) -> _Wanted | _NotWanted:
    if state.deceased:
        return _NotWanted(GapResolution.DECEASED)
    if state.emigrated:
        return _NotWanted(GapResolution.EMIGRATED)
    listing = state.listing
    if listing is None:
        return _NotWanted(_resolution_without_listing(state))
    if state.has_real_flk():
        return _NotWanted(GapResolution.FAST_LAKARKONTAKT_ASSIGNED)
    if state.last_real_flk_end is not None and state.last_real_flk_end.reason is FlkEndReason.RELISTED:
        # The FLK stream says the patient relisted; the listing event is on its way.
        return _NotWanted(GapResolution.RELISTED)
    if state.declined_at_listing_unit and state.decline.suppresses_alerts:
        return _NotWanted(GapResolution.DECLINED)
    qualifying_since = _qualifying_since(state, now, policy)
    if qualifying_since is None:
        return _NotWanted(GapResolution.NO_LONGER_QUALIFIES)
    grace_end = listing.started_at + policy.grace
    if now < grace_end:
        return _NotWanted(None)

    since = [grace_end, qualifying_since]
    end = state.last_real_flk_end
    since.append(end.ended_at if end is not None else listing.started_at)
    decline = state.decline
    if decline is not None and decline.unit_id == listing.unit_id and not decline.declined:
        since.append(decline.decided_at)  # a withdrawn decline
    last = state.last_gap
    if last is not None and last.listing_id == listing.listing_id:
        since.append(last.resolved_at)  # a new gap never starts before the previous one ended
    opened_at = min(max(since), now)

    latest = state.latest_risk
    return _Wanted(
        cause=_cause(state),
        rub=latest.rub if latest is not None else None,
        sabo=bool(state.qualifying_sabo_periods(now, policy)),
        opened_at=opened_at,
    )


def _wanted_fvk(state: PatientCareState, now: datetime, policy: CarePolicy) -> _Wanted | _NotWanted:
    """The fast-vårdkontakt gap (module doc): a listed patient whose latest RUB is in the
    profile's bands, without an open fast vårdkontakt, after the grace period."""
    if state.deceased:
        return _NotWanted(GapResolution.DECEASED)
    if state.emigrated:
        return _NotWanted(GapResolution.EMIGRATED)
    listing = state.listing
    if listing is None:
        return _NotWanted(_resolution_without_listing(state))
    if state.has_fast_vardkontakt():
        return _NotWanted(GapResolution.FAST_VARDKONTAKT_APPOINTED)
    bands = policy.fast_vardkontakt_rub_bands
    history = state.risk_history
    if not bands or not history or history[-1].rub not in bands:
        return _NotWanted(GapResolution.NO_LONGER_QUALIFIES)
    qualifying_since = history[-1].computed_at
    for assessment in reversed(history):
        if assessment.rub not in bands:
            break
        qualifying_since = assessment.computed_at
    grace_end = listing.started_at + policy.grace
    if now < grace_end:
        return _NotWanted(None)

    since = [grace_end, qualifying_since, listing.started_at]
    if state.last_fvk_ended_at is not None:
        since.append(state.last_fvk_ended_at)
    last = state.last_fvk_gap
    if last is not None and last.listing_id == listing.listing_id:
        since.append(last.resolved_at)
    cause = GapCause.FAST_VARDKONTAKT_ENDED if state.last_fvk_ended_at is not None else GapCause.NO_FAST_VARDKONTAKT
    return _Wanted(
        cause=cause,
        rub=history[-1].rub,
        sabo=bool(state.qualifying_sabo_periods(now, policy)),
        opened_at=min(max(since), now),
    )


#: the state fields that hold each kind's open gap and last resolved gap
_SLOTS: dict[GapKind, tuple[str, str]] = {
    GapKind.FAST_LAKARKONTAKT: ("open_gap", "last_gap"),
    GapKind.FAST_VARDKONTAKT: ("open_fvk_gap", "last_fvk_gap"),
}


def _evaluate(
    state: PatientCareState, now: datetime, policy: CarePolicy, effective_at: datetime
) -> tuple[PatientCareState, list[GapEvent]]:
    state, events = _evaluate_kind(state, GapKind.FAST_LAKARKONTAKT, _wanted(state, now, policy), now, effective_at)
    if policy.requires_fast_vardkontakt or state.open_fvk_gap is not None:
        # (a gap opened under a profile that required it resolves, no_longer_qualifies, if it no longer does)
        state, more = _evaluate_kind(state, GapKind.FAST_VARDKONTAKT, _wanted_fvk(state, now, policy), now,
                                     effective_at)
        events.extend(more)
    return state, events


def _evaluate_kind(
    state: PatientCareState, kind: GapKind, wanted: _Wanted | _NotWanted, now: datetime, effective_at: datetime
) -> tuple[PatientCareState, list[GapEvent]]:
    open_field, last_field = _SLOTS[kind]
    events: list[GapEvent] = []

    gap: OpenGap | None = getattr(state, open_field)
    if gap is not None:
        resolution: GapResolution | None
        if state.deceased:
            resolution = GapResolution.DECEASED
        elif state.emigrated:
            resolution = GapResolution.EMIGRATED
        elif state.listing is None:
            resolution = _resolution_without_listing(state)
        elif state.listing.unit_id != gap.unit_id:
            resolution = GapResolution.RELISTED
        elif isinstance(wanted, _NotWanted):
            resolution = wanted.resolution
        else:
            resolution = None  # still a gap (its recorded cause, RUB and SÄBO stay as opened)
        if resolution is not None:
            resolved_at = min(max(effective_at, gap.opened_at), now)
            events.append(
                CareGapResolved(
                    gap_id=gap.gap_id,
                    patient_key=state.patient_key,
                    unit_id=gap.unit_id,
                    resolution=resolution,
                    resolved_at=resolved_at,
                    kind=kind,
                )
            )
            state = replace(
                state,
                **{
                    open_field: None,
                    last_field: _LastGap(
                        gap_id=gap.gap_id,
                        listing_id=gap.listing_id,
                        resolved_at=resolved_at,
                        seq_in_episode=gap.seq_in_episode,
                    ),
                },
            )

    if getattr(state, open_field) is None and isinstance(wanted, _Wanted):
        listing = state.listing
        assert listing is not None
        gap_id = care_gap_id(state.patient_key, listing.unit_id, listing.listing_id, wanted.opened_at, kind)
        last: _LastGap | None = getattr(state, last_field)
        seq = 1
        if last is not None and last.listing_id == listing.listing_id:
            seq = last.seq_in_episode + 1
            if wanted.opened_at <= last.resolved_at:
                # Reopened at the instant the previous gap of this episode closed: every
                # earlier gap opened at or before that instant, so tell them apart by number.
                gap_id = uuid.uuid5(CARE_GAP_NAMESPACE, f"{gap_id}|{seq}")
        opened = OpenGap(
            gap_id=gap_id,
            unit_id=listing.unit_id,
            listing_id=listing.listing_id,
            cause=wanted.cause,
            rub=wanted.rub,
            sabo=wanted.sabo,
            opened_at=wanted.opened_at,
            seq_in_episode=seq,
            kind=kind,
        )
        events.append(
            CareGapOpened(
                gap_id=gap_id,
                patient_key=state.patient_key,
                unit_id=opened.unit_id,
                cause=opened.cause,
                rub=opened.rub,
                sabo=opened.sabo,
                opened_at=opened.opened_at,
                kind=kind,
            )
        )
        state = replace(state, **{open_field: opened})
    return state, events
