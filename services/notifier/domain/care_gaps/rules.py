"""The rules: apply a fact to a patient's state, and the gaps that follow (pure, no I/O)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from .events import CareGapOpened, CareGapResolved, GapEvent
from .facts import (
    Fact,
    FlkAssignedFact,
    FlkDeclinedFact,
    FlkEndedFact,
    FvkAppointedFact,
    FvkEndedFact,
    ListingEndedFact,
    ListingStartedFact,
    PersonStatusFact,
    ResidenceFact,
    RiskAssessedFact,
    Tick,
    _aware,
)
from .policy import CarePolicy
from .state import (
    CARE_GAP_NAMESPACE,
    RISK_HISTORY_LIMIT,
    Decline,
    FlkAssignment,
    FlkEnd,
    FvkAppointment,
    Listing,
    ListingEnd,
    OpenGap,
    PatientCareState,
    PersonStatus,
    RiskAssessment,
    SaboPeriod,
    _LastGap,
    care_gap_id,
)
from .vocabulary import FlkEndReason, GapCause, GapKind, GapResolution, ListingEndReason


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
