"""``decide(state, command, policy) -> list[Event]``: the listing rules as pure functions.

One decide function per command type, registered in :data:`DECIDERS`. Listing and FLK rules
are small check functions ``(ctx) -> RejectionReason | None`` run in a fixed order; the first
that objects rejects the command with a reason that carries the rule id. Each check reads its
switches from the :class:`PolicyProfile`, so a regional difference is a profile value, never a
branch on the region's name.

L2 is enforced by absence: no check reads geography, and the model has nowhere to put it
(no address, municipality, coordinate or catchment area on a person, unit or profile).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from . import commands as cmd
from . import events as ev
from .capacity import assess
from .evolve import evolve_all
from .model import (
    ALLMANMEDICIN,
    LAKARE,
    CareUnit,
    ConsentOutcome,
    DoctorList,
    EmploymentType,
    FastVardkontaktEndReason,
    FlkAssignment,
    FlkEndReason,
    GuardianDecision,
    Initiator,
    ListingChange,
    ListingEndReason,
    ListingOrigin,
    ListingState,
    ListKind,
    PatientRecord,
    PendingListing,
    Person,
    PopulationStatus,
    PractitionerRole,
    ExemptionReason,
    age_in_years,
    months_before,
)
from .policy import (
    GROUP_CHILDREN,
    GROUP_ELDERLY,
    GROUP_NEWBORN,
    GROUP_SABO,
    PROFILES,
    PolicyNotApplicable,
    PolicyProfile,
    profile_for,
)
from .reasons import RejectionReason, RuleId

Events = list[ev.Event]

# --------------------------------------------------------------------------- shared predicates


def person_groups(person: Person, on: date, policy: PolicyProfile) -> frozenset[str]:
    """Groups a person belongs to on a date, for L4 and L7 exemptions (``newborn``, ``sabo``)."""
    groups = set()
    if person.birth_date is not None and 0 <= (on - person.birth_date).days < policy.l7_newborn_max_age_days:
        groups.add(GROUP_NEWBORN)
    if person.sabo_resident:
        groups.add(GROUP_SABO)
    return frozenset(groups)


def is_minor(person: Person, on: date, policy: PolicyProfile) -> bool:
    return person.birth_date is not None and age_in_years(person.birth_date, on) < policy.p3_minor_below_age


def in_patient_group(person: Person, group: str, on: date, policy: PolicyProfile) -> bool:
    """F2 patient groups: ``elderly`` (65+ or SÄBO resident) and ``children`` (minors)."""
    if group == GROUP_ELDERLY:
        old = person.birth_date is not None and age_in_years(person.birth_date, on) >= policy.f2_elderly_min_age
        return old or (policy.f2_sabo_counts_as_elderly and person.sabo_resident)
    if group == GROUP_CHILDREN:
        return is_minor(person, on, policy)
    return False


def population_rejection(person: Person) -> RejectionReason | None:
    """P1: nothing new is started for a deceased or emigrated person."""
    if person.population_status is PopulationStatus.DECEASED:
        return RejectionReason.PERSON_DECEASED
    if person.population_status is PopulationStatus.EMIGRATED:
        return RejectionReason.PERSON_EMIGRATED
    return None


def change_counts_toward_limit(
    initiated_by: Initiator,
    origin: ListingOrigin,
    exemption_reason: ExemptionReason | None,
    policy: PolicyProfile,
) -> bool:
    """L5: only person-initiated active choices without an accepted exemption reason count."""
    if initiated_by is not Initiator.PERSON or origin is not ListingOrigin.ACTIVE_CHOICE:
        return False
    return exemption_reason is None or exemption_reason not in policy.l5_exemption_reasons


def counted_changes_in_window(changes: Sequence[ListingChange], on: date, policy: PolicyProfile) -> int:
    """L5: counted changes in the rolling window ``(on − 12 months, on]``."""
    window_start = months_before(on, policy.l5_window_months)
    return sum(
        1
        for c in changes
        if window_start < c.on <= on
        and change_counts_toward_limit(c.initiated_by, c.origin, c.exemption_reason, policy)
    )


# --------------------------------------------------------------------------- RequestListing


@dataclass(frozen=True, slots=True)
class ListingContext:
    state: ListingState
    command: cmd.RequestListing
    policy: PolicyProfile
    record: PatientRecord
    unit: CareUnit

    @property
    def person(self) -> Person:
        return self.record.person

    @property
    def responsibility_from(self) -> date:
        """L6: responsibility starts ``offset`` days after registration."""
        return self.command.effective_date + timedelta(days=self.policy.l6_responsibility_offset_days)

    @property
    def is_change(self) -> bool:
        return self.record.last_listing is not None

    @property
    def counts_toward_limit(self) -> bool:
        c = self.command
        return self.is_change and change_counts_toward_limit(c.initiated_by, c.origin, c.exemption_reason, self.policy)


def check_population_status(ctx: ListingContext) -> RejectionReason | None:  # P1
    return population_rejection(ctx.person)


def check_not_listed_here(ctx: ListingContext) -> RejectionReason | None:  # L1
    current = ctx.record.open_listing
    if current is not None and current.care_unit_id == ctx.unit.hsa_id:
        return RejectionReason.ALREADY_LISTED_AT_UNIT
    return None


def check_not_backdated(ctx: ListingContext) -> RejectionReason | None:  # L1
    last = ctx.record.last_listing
    if last is not None and ctx.command.effective_date < last.registered_on:
        return RejectionReason.EFFECTIVE_DATE_BEFORE_CURRENT_LISTING
    return None


def check_contract(ctx: ListingContext) -> RejectionReason | None:  # L3
    if not ctx.unit.has_contract_on(ctx.responsibility_from):
        return RejectionReason.NO_CONTRACT_ON_DATE
    return None


def check_residency(ctx: ListingContext) -> RejectionReason | None:  # L4
    policy, person = ctx.policy, ctx.person
    if not policy.l4_residency_required:
        return None
    if person.population_status is PopulationStatus.FOLKBOKFORD and person.home_region == ctx.unit.region:
        return None
    groups = set(person_groups(person, ctx.command.effective_date, policy))
    if ctx.command.residency_exception is not None:
        groups.add(ctx.command.residency_exception)
    if groups & policy.l4_exception_groups:
        return None
    return RejectionReason.NOT_FOLKBOKFORD_IN_REGION


def guardian_consent(person: Person, c: cmd.RequestListing, policy: PolicyProfile
                     ) -> tuple[RejectionReason | None, frozenset[str]]:
    """P3: (rejection, guardians still awaited) for a listing request.

    Who the guardians are comes from the population register (``person.guardian_keys``). Every
    consent must come from one of them; at least one must have consented (the requesting guardian);
    when all must consent, the others are *awaited* — the request waits instead of being rejected.
    When the register has no guardianship fact, the caller's ``guardian_count`` is used as in v1
    (all consents in the request itself; nobody can be awaited, since nobody knows who the others are).
    """
    if not policy.p3_guardian_consent_required or c.initiated_by is not Initiator.PERSON:
        return None, frozenset()
    if not is_minor(person, c.effective_date, policy):
        return None, frozenset()
    consents = c.consenting_guardian_keys
    guardians = person.guardian_keys
    if guardians is None:  # the register is silent: v1 behaviour, the caller's count
        if not consents:
            return RejectionReason.GUARDIAN_CONSENT_MISSING, frozenset()
        if policy.p3_all_guardians_must_consent and (c.guardian_count is None or len(consents) < c.guardian_count):
            return RejectionReason.GUARDIAN_CONSENT_MISSING, frozenset()
        return None, frozenset()
    if consents - guardians:
        return RejectionReason.CONSENT_BY_NON_GUARDIAN, frozenset()
    if not consents:
        return RejectionReason.GUARDIAN_CONSENT_MISSING, frozenset()
    if not policy.p3_all_guardians_must_consent:
        return None, frozenset()
    return None, frozenset(guardians - consents)


def check_guardian_consent(ctx: ListingContext) -> RejectionReason | None:  # P3
    return guardian_consent(ctx.person, ctx.command, ctx.policy)[0]


def check_switch_limit(ctx: ListingContext) -> RejectionReason | None:  # L5
    policy = ctx.policy
    if not policy.l5_enforced or not ctx.counts_toward_limit:
        return None
    if counted_changes_in_window(ctx.record.changes, ctx.command.effective_date, policy) >= (
        policy.l5_max_person_initiated_changes
    ):
        return RejectionReason.SWITCH_LIMIT
    return None


def limit_holder(state: ListingState, unit: CareUnit) -> CareUnit:
    """The unit whose listing limit applies (L7): a filial's main unit (seed 004), else the unit."""
    return state.units.get(unit.main_unit_id, unit) if unit.main_unit_id is not None else unit


def listed_in_family(state: ListingState, holder: CareUnit) -> int:
    """Listed at the limit holder and at every filial of it the state knows."""
    family = {holder.hsa_id} | {u.hsa_id for u in state.units.values() if u.main_unit_id == holder.hsa_id}
    return sum(state.listed_count_by_unit.get(u, 0) for u in family)


def check_listing_limit(ctx: ListingContext) -> RejectionReason | None:  # L7
    if not ctx.policy.l7_enforced:
        return None
    holder = limit_holder(ctx.state, ctx.unit)
    limit = holder.listing_limit_on(ctx.responsibility_from)
    if limit is None or listed_in_family(ctx.state, holder) < limit.max_listed:
        return None
    if person_groups(ctx.person, ctx.command.effective_date, ctx.policy) & limit.exempt_groups:
        return None
    return RejectionReason.LISTING_LIMIT_REACHED


ListingCheck = Callable[[ListingContext], RejectionReason | None]

# Order matters only for which reason is reported first. No L2 check exists: see module doc.
LISTING_CHECKS: tuple[tuple[RuleId, ListingCheck], ...] = (
    (RuleId.P1, check_population_status),
    (RuleId.L1, check_not_listed_here),
    (RuleId.L1, check_not_backdated),
    (RuleId.L3, check_contract),
    (RuleId.L4, check_residency),
    (RuleId.P3, check_guardian_consent),
    (RuleId.L5, check_switch_limit),
    (RuleId.L7, check_listing_limit),
)


def _listing_rejected(c: Any, reason: RejectionReason, policy: PolicyProfile, care_unit_id: str | None) -> Events:
    return [
        ev.ListingRejected(
            patient_key=c.patient_key,
            care_unit_id=care_unit_id,
            effective_date=c.effective_date,
            reason=reason,
            decided_under=policy.ref,
        )
    ]


def decide_request_listing(state: ListingState, c: cmd.RequestListing, policy: PolicyProfile) -> Events:
    """L1–L7, P1, P3. Accepted: [ListingEnded, FastLakarkontaktEnded…(relisted)], ListingStarted.

    A minor's request by one of two guardians (P3) that passes every other rule waits for the other
    guardian: ``ListingAwaitingConsent``. A newer request that is accepted or waits replaces an open
    pending request (``ListingConsentClosed(superseded)`` first)."""
    record = state.patients.get(c.patient_key)
    if record is None:
        return _listing_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, c.care_unit_id)
    superseded = record.open_pending_listing
    closing = [] if superseded is None else [
        _consent_closed(c.patient_key, superseded, c.effective_date, ConsentOutcome.SUPERSEDED)]
    return _listing_decision(state, c, policy, record, closing, pending_may_wait=True)


def _consent_closed(patient_key: str, p: PendingListing, on: date, outcome: ConsentOutcome) -> ev.ListingConsentClosed:
    return ev.ListingConsentClosed(patient_key=patient_key, care_unit_id=p.care_unit_id, requested_on=p.requested_on,
                                   closed_on=max(on, p.requested_on), outcome=outcome)


def _listing_decision(state: ListingState, c: cmd.RequestListing, policy: PolicyProfile, record: PatientRecord,
                      closing: Events, *, pending_may_wait: bool, on_reject: Events = ()) -> Events:
    """The ordinary listing decision; ``closing`` precedes an accepted (or waiting) outcome,
    ``on_reject`` precedes a rejection."""
    unit = state.units.get(c.care_unit_id)
    if unit is None:
        return [*on_reject, *_listing_rejected(c, RejectionReason.UNIT_UNKNOWN, policy, c.care_unit_id)]
    ctx = ListingContext(state, c, policy, record, unit)
    for _rule, check in LISTING_CHECKS:
        if (reason := check(ctx)) is not None:
            return [*on_reject, *_listing_rejected(c, reason, policy, c.care_unit_id)]

    _, awaiting = guardian_consent(record.person, c, policy)
    if awaiting:  # P3: every other rule allows it; the other guardian's consent is missing
        pending = ev.ListingAwaitingConsent(
            patient_key=c.patient_key,
            care_unit_id=unit.hsa_id,
            requested_on=c.effective_date,
            expires_on=c.effective_date + timedelta(days=policy.p3_consent_wait_days),
            consented_guardian_keys=c.consenting_guardian_keys,
            awaiting_guardian_keys=awaiting,
            origin=c.origin,
            channel=c.channel,
            initiated_by=c.initiated_by,
            exemption_reason=c.exemption_reason,
            residency_exception=c.residency_exception,
        )
        return [*closing, pending] if pending_may_wait else [*on_reject, *_listing_rejected(
            c, RejectionReason.GUARDIAN_CONSENT_MISSING, policy, c.care_unit_id)]

    start = ctx.responsibility_from
    events: Events = list(closing)
    current = record.open_listing
    if current is not None:  # L1: atomically end the previous listing; F4: and every FLK there
        events.append(
            ev.ListingEnded(
                patient_key=c.patient_key,
                care_unit_id=current.care_unit_id,
                ended_on=start,
                reason=ListingEndReason.RELISTED,
            )
        )
        ending = ending_with_listing(record, current.care_unit_id, policy)
        events += end_assignments(record, ending, start, FlkEndReason.RELISTED,
                                  coordination_moving_to(record, ending, unit.hsa_id))
    last = record.last_listing
    events.append(
        ev.ListingStarted(
            patient_key=c.patient_key,
            care_unit_id=unit.hsa_id,
            started_on=c.effective_date,
            responsibility_from=start,
            origin=c.origin,
            channel=c.channel,
            initiated_by=c.initiated_by,
            exemption_reason=c.exemption_reason,
            previous_care_unit_id=last.care_unit_id if last is not None else None,
            counts_toward_switch_limit=ctx.counts_toward_limit,
        )
    )
    return events


def _pending_request(p: PendingListing, patient_key: str, on: date, consents: frozenset[str]) -> cmd.RequestListing:
    """The pending request as a listing request on ``on`` with the consents given so far."""
    return cmd.RequestListing(
        patient_key=patient_key, care_unit_id=p.care_unit_id, effective_date=on, initiated_by=p.initiated_by,
        channel=p.channel, origin=p.origin, exemption_reason=p.exemption_reason,
        residency_exception=p.residency_exception, consenting_guardian_keys=consents,
    )


def _expired(patient_key: str, p: PendingListing, on: date, policy: PolicyProfile) -> Events:
    """P3: the wait is over — the request closes on its ``expires_on`` and is rejected."""
    return [
        ev.ListingConsentClosed(patient_key=patient_key, care_unit_id=p.care_unit_id, requested_on=p.requested_on,
                                closed_on=p.expires_on, outcome=ConsentOutcome.EXPIRED),
        ev.ListingRejected(patient_key=patient_key, care_unit_id=p.care_unit_id, effective_date=on,
                           reason=RejectionReason.GUARDIAN_CONSENT_EXPIRED, decided_under=policy.ref),
    ]


def decide_answer_consent(state: ListingState, c: cmd.AnswerListingConsent, policy: PolicyProfile) -> Events:
    """P3: a guardian answers the child's pending listing request.

    * not a guardian in the population register → rejected ``consent_by_non_guardian`` (nothing changes);
    * no open request at that unit → ``no_pending_listing_request``; after its wait → it expires now;
    * a refusal (by any guardian, the requester included: a withdrawal) → closed ``refused`` + rejected
      ``guardian_refused``;
    * a consent already given → ``consent_already_given`` (nothing changes);
    * a consent that completes the consents → the ordinary listing decision on the consent's date (not
      before the request's), with every rule; accepted → closed ``consented`` + the listing events;
      rejected by a rule → closed ``rejected`` + that rejection. If the register's guardians changed
      meanwhile and someone is still awaited, the request is announced again with the new sets.
    """
    record = state.patients.get(c.patient_key)
    if record is None:
        return _listing_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, c.care_unit_id)
    pending = record.open_pending_listing
    if pending is None or pending.care_unit_id != c.care_unit_id:
        return _listing_rejected(c, RejectionReason.NO_PENDING_LISTING_REQUEST, policy, c.care_unit_id)
    guardians = record.person.guardian_keys or frozenset()
    if c.guardian_key not in guardians:
        return _listing_rejected(c, RejectionReason.CONSENT_BY_NON_GUARDIAN, policy, c.care_unit_id)
    if c.effective_date >= pending.expires_on:
        return _expired(c.patient_key, pending, c.effective_date, policy)
    on = max(c.effective_date, pending.requested_on)
    if c.decision is GuardianDecision.REFUSE:
        return [
            _consent_closed(c.patient_key, pending, on, ConsentOutcome.REFUSED),
            *_listing_rejected(c, RejectionReason.GUARDIAN_REFUSED, policy, c.care_unit_id),
        ]
    if c.guardian_key in pending.consented_guardian_keys:
        return _listing_rejected(c, RejectionReason.CONSENT_ALREADY_GIVEN, policy, c.care_unit_id)
    consents = (pending.consented_guardian_keys | {c.guardian_key}) & guardians
    request = _pending_request(pending, c.patient_key, on, consents)
    _, awaiting = guardian_consent(record.person, request, policy)
    if awaiting:  # the register's guardians changed while it waited: still someone to ask
        return [replace(_pending_event(pending, c.patient_key), consented_guardian_keys=consents,
                        awaiting_guardian_keys=awaiting)]
    return _listing_decision(
        state, request, policy, record, [_consent_closed(c.patient_key, pending, on, ConsentOutcome.CONSENTED)],
        pending_may_wait=False, on_reject=[_consent_closed(c.patient_key, pending, on, ConsentOutcome.REJECTED)])


def _pending_event(p: PendingListing, patient_key: str) -> ev.ListingAwaitingConsent:
    return ev.ListingAwaitingConsent(
        patient_key=patient_key, care_unit_id=p.care_unit_id, requested_on=p.requested_on, expires_on=p.expires_on,
        consented_guardian_keys=p.consented_guardian_keys, awaiting_guardian_keys=p.awaiting_guardian_keys,
        origin=p.origin, channel=p.channel, initiated_by=p.initiated_by, exemption_reason=p.exemption_reason,
        residency_exception=p.residency_exception)


def decide_expire_consent(state: ListingState, c: cmd.ExpireListingConsent, policy: PolicyProfile) -> Events:
    """P3: the sweep. An open request whose wait is over (``expires_on <= effective_date``) closes
    ``expired`` on its ``expires_on`` and is rejected ``guardian_consent_expired``; otherwise nothing."""
    record = state.patients.get(c.patient_key)
    pending = record.open_pending_listing if record is not None else None
    if pending is None or c.effective_date < pending.expires_on:
        return []
    return _expired(c.patient_key, pending, c.effective_date, policy)


def decide_end_listing(state: ListingState, c: cmd.EndListing, policy: PolicyProfile) -> Events:
    record = state.patients.get(c.patient_key)
    if record is None:
        return _listing_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, None)
    current = record.open_listing
    if current is None:
        return _listing_rejected(c, RejectionReason.NOT_LISTED, policy, None)
    if c.effective_date < current.registered_on:
        return _listing_rejected(c, RejectionReason.EFFECTIVE_DATE_BEFORE_CURRENT_LISTING, policy, current.care_unit_id)
    return [
        ev.ListingEnded(
            patient_key=c.patient_key, care_unit_id=current.care_unit_id, ended_on=c.effective_date, reason=c.reason
        ),
        *end_assignments(record, ending_with_listing(record, current.care_unit_id, policy), c.effective_date,
                         FlkEndReason.LISTING_ENDED),
    ]


# --------------------------------------------------------------------------- ending FLK assignments


def ending_with_listing(record: PatientRecord, unit: str, policy: PolicyProfile) -> tuple[FlkAssignment, ...]:
    """The FLKs that end when the listing at ``unit`` ends, is replaced or the FLK there is declined:
    every one (F4), or, where an FLK may work at another unit (Kronoberg), the ones at ``unit``."""
    if not policy.f4_flk_outside_listing_unit:
        return record.open_assignments
    return tuple(a for a in record.open_assignments if a.care_unit_id == unit)


def coordination_moving_to(record: PatientRecord, ending: Sequence[FlkAssignment], unit: str) -> str | None:
    """Relisted at ``unit`` where the patient already has a named FLK that stays (an FLK at another
    unit, Kronoberg): coordination moves to it if it is not there already (primary care first)."""
    ending_ids = {a.list_id for a in ending}
    staying = [a for a in record.open_assignments if a.list_id not in ending_ids]
    here = [a for a in staying if a.care_unit_id == unit and a.list_kind is ListKind.DOCTOR]
    if not here or any(a.coordinating for a in here):
        return None
    return min(here, key=lambda a: _coordination_rank(a, unit)).list_id


def _coordination_rank(a: FlkAssignment, listing_unit: str | None = None) -> tuple[bool, bool, date, str]:
    """Who becomes coordinating when it must move: named before fictive, the listing unit's before
    another unit's (primary care first, seed 003), longest-standing, then id."""
    return (a.list_kind is ListKind.FICTIVE, a.care_unit_id != listing_unit, a.period.start, a.list_id)


def assignment_ended(
    patient_key: str, a: FlkAssignment, on: date, reason: FlkEndReason
) -> ev.FastLakarkontaktEnded:
    return ev.FastLakarkontaktEnded(
        patient_key=patient_key,
        list_id=a.list_id,
        care_unit_id=a.care_unit_id,
        list_kind=a.list_kind,
        practitioner_id=a.practitioner_id,
        coordinating=a.coordinating,
        ended_on=on,
        reason=reason,
    )


def end_assignments(
    record: PatientRecord,
    ending: Sequence[FlkAssignment],
    on: date,
    reason: FlkEndReason,
    new_coordinating_list_id: str | None = None,
) -> Events:
    """End some of a person's open assignments and keep F5's "exactly one coordinating".

    If the coordinating FLK ends while others remain (Kronoberg), coordination moves to
    ``new_coordinating_list_id`` if given, else to the longest-standing named one (project choice).
    """
    ending_ids = {a.list_id for a in ending}
    events: Events = [assignment_ended(record.patient_key, a, on, reason) for a in ending]
    remaining = [a for a in record.open_assignments if a.list_id not in ending_ids]
    if not remaining:
        return events
    coordinating_now = next((a for a in record.open_assignments if a.coordinating), None)
    target: FlkAssignment | None = None
    if new_coordinating_list_id is not None:
        target = next((a for a in remaining if a.list_id == new_coordinating_list_id), None)
    elif not any(a.coordinating for a in remaining):
        listing = record.open_listing
        unit = listing.care_unit_id if listing is not None else None
        target = min(remaining, key=lambda a: _coordination_rank(a, unit))
    if target is not None and not target.coordinating:
        events.append(
            ev.CoordinatingFastLakarkontaktChanged(
                patient_key=record.patient_key,
                list_id=target.list_id,
                previous_list_id=coordinating_now.list_id if coordinating_now is not None else None,
                effective_date=on,
                care_unit_id=target.care_unit_id,
                practitioner_id=target.practitioner_id,
            )
        )
    return events


# --------------------------------------------------------------------------- AssignFastLakarkontakt


@dataclass(frozen=True, slots=True)
class AssignmentContext:
    state: ListingState
    command: cmd.AssignFastLakarkontakt
    policy: PolicyProfile
    record: PatientRecord
    doctor_list: DoctorList
    role: PractitionerRole | None

    @property
    def person(self) -> Person:
        return self.record.person

    @property
    def on(self) -> date:
        return self.command.effective_date

    @property
    def named(self) -> bool:
        return self.doctor_list.kind is ListKind.DOCTOR

    @property
    def listing_unit(self) -> str | None:
        listing = self.record.open_listing
        return listing.care_unit_id if listing is not None else None

    @property
    def at_listing_unit(self) -> bool:
        return self.doctor_list.care_unit_id == self.listing_unit

    @property
    def new_list_size(self) -> int:
        return self.state.list_size_by_list.get(self.doctor_list.list_id, 0) + 1

    @property
    def replaced(self) -> tuple[FlkAssignment, ...]:
        """Open assignments this one ends: the one named in the command, and — for a named FLK —
        any fictive-list placement (a placeholder, seed 001; project choice)."""
        return tuple(
            a
            for a in self.record.open_assignments
            if a.list_id == self.command.replaces_list_id or (self.named and a.list_kind is ListKind.FICTIVE)
        )

    @property
    def remaining(self) -> tuple[FlkAssignment, ...]:
        replaced = {a.list_id for a in self.replaced}
        return tuple(a for a in self.record.open_assignments if a.list_id not in replaced)


def check_assignee_in_population(ctx: AssignmentContext) -> RejectionReason | None:  # P1
    return population_rejection(ctx.person)


def check_listed_at_list_unit(ctx: AssignmentContext) -> RejectionReason | None:  # F4
    """The list — and the doctor's role behind it — must be at the unit the person is listed at; where
    the profile lets an FLK work elsewhere (Kronoberg), a named doctor's list at another unit will do
    for a listed person, the role at the list's unit."""
    listing = ctx.record.open_listing
    if listing is None or listing.registered_on > ctx.on:
        return RejectionReason.NOT_LISTED_AT_LIST_UNIT
    if not ctx.at_listing_unit and not (ctx.policy.f4_flk_outside_listing_unit and ctx.named):
        return RejectionReason.NOT_LISTED_AT_LIST_UNIT
    if ctx.named and ctx.role is not None and ctx.role.care_unit_id != ctx.doctor_list.care_unit_id:
        return RejectionReason.NOT_LISTED_AT_LIST_UNIT
    return None


def check_coordinating_at_listing_unit(ctx: AssignmentContext) -> RejectionReason | None:  # F5 (with F4)
    """Asked to be coordinating at another unit while the patient has an FLK at the listing unit:
    refused, the coordinating FLK is in primary care first (seed 003)."""
    if ctx.at_listing_unit or not ctx.command.coordinating:
        return None
    if any(a.care_unit_id == ctx.listing_unit for a in ctx.remaining if a.list_kind is ListKind.DOCTOR):
        return RejectionReason.COORDINATING_FLK_NOT_AT_LISTING_UNIT
    return None


def check_not_already_on_list(ctx: AssignmentContext) -> RejectionReason | None:  # F5
    if any(a.list_id == ctx.doctor_list.list_id for a in ctx.record.open_assignments):
        return RejectionReason.ALREADY_ON_LIST
    return None


def check_replaced_exists(ctx: AssignmentContext) -> RejectionReason | None:  # F5
    wanted = ctx.command.replaces_list_id
    if wanted is not None and not any(a.list_id == wanted for a in ctx.record.open_assignments):
        return RejectionReason.NO_SUCH_ASSIGNMENT
    return None


def check_fictive_lists_used(ctx: AssignmentContext) -> RejectionReason | None:  # F3
    if not ctx.named and not ctx.policy.f3_fictive_lists_enabled:
        return RejectionReason.FICTIVE_LISTS_NOT_USED
    return None


def check_active_doctor(ctx: AssignmentContext) -> RejectionReason | None:  # F1
    """The list's doctor works there on the command's date and on the day the FLK begins (a late,
    backdated command may come after the roster recorded the doctor leaving in between)."""
    role = ctx.role
    if ctx.named and (role is None or not role.is_active_on(ctx.on) or not role.is_active_on(assignment_start(ctx))):
        return RejectionReason.LIST_HAS_NO_ACTIVE_DOCTOR
    return None


def check_legitimerad_lakare(ctx: AssignmentContext) -> RejectionReason | None:  # F1
    role = ctx.role
    if ctx.named and role is not None and not (role.profession.strip().casefold() == LAKARE and role.legitimerad):
        return RejectionReason.NOT_LEGITIMERAD_LAKARE
    return None


def check_regional_eligibility(ctx: AssignmentContext) -> RejectionReason | None:  # F2
    role, policy = ctx.role, ctx.policy
    if not ctx.named or role is None:
        return None
    if role.employment_type not in policy.f2_allowed_employment_types:
        return RejectionReason.EMPLOYMENT_NOT_ELIGIBLE
    specialty = ALLMANMEDICIN if role.employment_type is EmploymentType.ST_ALLMANMEDICIN else role.specialty
    eligible, group = policy.specialty_group(specialty)
    if not eligible:
        return RejectionReason.SPECIALTY_NOT_ELIGIBLE
    if group is not None and not in_patient_group(ctx.person, group, ctx.on, policy):
        return RejectionReason.OUTSIDE_SPECIALTY_PATIENT_GROUP
    return None


def check_hard_capacity_cap(ctx: AssignmentContext) -> RejectionReason | None:  # F6
    if ctx.named and ctx.role is not None and assess(ctx.new_list_size, ctx.role, ctx.policy).above_hard_cap:
        return RejectionReason.CAPACITY_HARD_CAP
    return None


def check_number_of_flk(ctx: AssignmentContext) -> RejectionReason | None:  # F5
    limit = ctx.policy.f5_max_fast_lakarkontakter
    if limit is not None and len(ctx.remaining) >= limit:
        return RejectionReason.TOO_MANY_FAST_LAKARKONTAKTER
    return None


AssignmentCheck = Callable[[AssignmentContext], RejectionReason | None]

ASSIGNMENT_CHECKS: tuple[tuple[RuleId, AssignmentCheck], ...] = (
    (RuleId.P1, check_assignee_in_population),
    (RuleId.F4, check_listed_at_list_unit),
    (RuleId.F5, check_not_already_on_list),
    (RuleId.F5, check_coordinating_at_listing_unit),
    (RuleId.F5, check_replaced_exists),
    (RuleId.F3, check_fictive_lists_used),
    (RuleId.F1, check_active_doctor),
    (RuleId.F1, check_legitimerad_lakare),
    (RuleId.F2, check_regional_eligibility),
    (RuleId.F6, check_hard_capacity_cap),
    (RuleId.F5, check_number_of_flk),
)


def _assignment_rejected(c: Any, reason: RejectionReason, policy: PolicyProfile, list_id: str | None) -> Events:
    return [
        ev.AssignmentRejected(
            patient_key=c.patient_key,
            list_id=list_id,
            effective_date=c.effective_date,
            reason=reason,
            decided_under=policy.ref,
        )
    ]


def _no_list_reason(state: ListingState, c: cmd.AssignFastLakarkontakt) -> RejectionReason:
    """Why there is no list to assign: the named practitioner is not a licensed doctor in any of their
    roles (F1: only a legitimerad läkare can be FLK, so no list exists for them), else F4."""
    if c.practitioner_id:
        roles = [r for r in state.roles.values() if r.practitioner_id == c.practitioner_id]
        if roles and not any(r.profession.strip().casefold() == LAKARE and r.legitimerad for r in roles):
            return RejectionReason.NOT_LEGITIMERAD_LAKARE
    return RejectionReason.LIST_UNKNOWN


def assignment_start(ctx: AssignmentContext) -> date:
    """An FLK at a unit begins when the unit's responsibility for the person does (L6): a command
    effective on the day of a new listing whose responsibility starts the next day starts then. Else
    the person would have two overlapping assignments on one list after relisting at a unit the same
    day — the old one running to the old listing's end, the new one from the command's day."""
    listing = ctx.record.open_listing
    assert listing is not None  # F4 checked
    return max(ctx.on, listing.period.start) if ctx.at_listing_unit else ctx.on


def _doctor_left_on(ctx: AssignmentContext) -> date | None:
    """When the named list's doctor left (F8: the role's end, already in the register); None while the
    role runs and for fictive lists."""
    role = ctx.role
    return role.period.end if ctx.named and role is not None else None


def decide_assign_flk(state: ListingState, c: cmd.AssignFastLakarkontakt, policy: PolicyProfile) -> Events:
    """F1–F6 (+P1). Accepted: [ended replaced…], Assigned, [CoordinatingChanged], [CapacityWarning]."""
    record = state.patients.get(c.patient_key)
    if record is None:
        return _assignment_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, c.list_id)
    doctor_list = state.lists.get(c.list_id)
    if doctor_list is None:
        return _assignment_rejected(c, _no_list_reason(state, c), policy, c.list_id)
    role = state.roles.get(doctor_list.role_id) if doctor_list.role_id is not None else None
    ctx = AssignmentContext(state, c, policy, record, doctor_list, role)
    for _rule, check in ASSIGNMENT_CHECKS:
        if (reason := check(ctx)) is not None:
            return _assignment_rejected(c, reason, policy, c.list_id)

    remaining = ctx.remaining
    coordinating_now = next((a for a in remaining if a.coordinating), None)
    # primary care first (seed 003): an FLK at the listing unit takes coordination from one elsewhere
    takes_coordination = coordinating_now is not None and (c.coordinating or (
        ctx.at_listing_unit and ctx.named and coordinating_now.care_unit_id != ctx.listing_unit))
    starts = assignment_start(ctx)
    left_on = _doctor_left_on(ctx)  # after ``starts`` if at all (F1 checked)
    events: Events = [
        assignment_ended(c.patient_key, a, starts, FlkEndReason.REPLACED) for a in ctx.replaced
    ]
    events.append(
        ev.FastLakarkontaktAssigned(
            patient_key=c.patient_key,
            list_id=doctor_list.list_id,
            care_unit_id=doctor_list.care_unit_id,
            list_kind=doctor_list.kind,
            practitioner_id=role.practitioner_id if role is not None else None,
            # F5: the first (or only) FLK is the coordinating one.
            coordinating=coordinating_now is None,
            assigned_on=starts,
        )
    )
    if takes_coordination:
        assert coordinating_now is not None
        events.append(
            ev.CoordinatingFastLakarkontaktChanged(
                patient_key=c.patient_key,
                list_id=doctor_list.list_id,
                previous_list_id=coordinating_now.list_id,
                effective_date=starts,
                care_unit_id=doctor_list.care_unit_id,
                practitioner_id=role.practitioner_id if role is not None else None,
            )
        )
    if left_on is not None and policy.f8_end_assignments_when_role_ends:
        # F8 already recorded for this doctor, after the FLK's start: the assignment is a late (backdated)
        # one and ends when the role did, as if the role's end had come after it — the register is the
        # same whichever of the two the service handled first. No capacity warning for a list that ends.
        assigned = evolve_all(state, events).patients[c.patient_key]
        new = tuple(a for a in assigned.open_assignments if a.list_id == doctor_list.list_id)
        return events + end_assignments(assigned, new, left_on, FlkEndReason.DOCTOR_LEFT)
    if ctx.named and role is not None and policy.f6_warn_above_capacity:
        assessment = assess(ctx.new_list_size, role, policy)
        if assessment.above_capacity:
            events.append(
                ev.CapacityWarning(
                    list_id=doctor_list.list_id,
                    care_unit_id=doctor_list.care_unit_id,
                    practitioner_id=role.practitioner_id,
                    list_size=assessment.list_size,
                    capacity=assessment.capacity.patients,
                    basis=assessment.capacity.basis,
                    effective_date=c.effective_date,
                    decided_under=policy.ref,
                )
            )
    return events


def decide_end_flk(state: ListingState, c: cmd.EndFastLakarkontakt, policy: PolicyProfile) -> Events:
    record = state.patients.get(c.patient_key)
    if record is None:
        return _assignment_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, c.list_id)
    ending = tuple(a for a in record.open_assignments if a.list_id == c.list_id)
    if not ending:
        return _assignment_rejected(c, RejectionReason.NO_SUCH_ASSIGNMENT, policy, c.list_id)
    new_coord = c.new_coordinating_list_id
    if new_coord is not None and not any(
        a.list_id == new_coord and a.list_id != c.list_id for a in record.open_assignments
    ):
        return _assignment_rejected(c, RejectionReason.NO_SUCH_ASSIGNMENT, policy, new_coord)
    return end_assignments(record, ending, c.effective_date, c.reason, new_coord)


def decide_decline_flk(state: ListingState, c: cmd.DeclineFastLakarkontakt, policy: PolicyProfile) -> Events:
    """F7: the patient stays listed; any FLK at the unit ends with reason ``declined``."""
    record = state.patients.get(c.patient_key)
    if record is None:
        return _assignment_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, None)
    if (reason := population_rejection(record.person)) is not None:
        return _assignment_rejected(c, reason, policy, None)
    listing = record.open_listing
    if listing is None:
        return _assignment_rejected(c, RejectionReason.NOT_LISTED, policy, None)
    if any(d.care_unit_id == listing.care_unit_id for d in record.open_declines):
        return _assignment_rejected(c, RejectionReason.ALREADY_DECLINED, policy, None)
    return [
        *end_assignments(record, ending_with_listing(record, listing.care_unit_id, policy), c.effective_date,
                         FlkEndReason.DECLINED),
        ev.FastLakarkontaktDeclined(
            patient_key=c.patient_key, care_unit_id=listing.care_unit_id, declined_on=c.effective_date,
            suppresses_alerts=policy.f7_declined_suppresses_alerts,
        ),
    ]


# --------------------------------------------------------------------------- fast vårdkontakt (V1)


def decide_request_vardkontakt(state: ListingState, c: cmd.RequestFastVardkontakt, policy: PolicyProfile) -> Events:
    record = state.patients.get(c.patient_key)
    if record is None:
        return _assignment_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, None)
    if (reason := population_rejection(record.person)) is not None:
        return _assignment_rejected(c, reason, policy, None)
    return [
        ev.FastVardkontaktRequested(
            patient_key=c.patient_key, care_unit_id=c.care_unit_id, effective_date=c.effective_date
        )
    ]


def decide_appoint_vardkontakt(state: ListingState, c: cmd.AppointFastVardkontakt, policy: PolicyProfile) -> Events:
    """V1: any profession; appointed by the verksamhetschef (checked when the unit's is known); several allowed."""
    record = state.patients.get(c.patient_key)
    if record is None:
        return _assignment_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, None)
    if (reason := population_rejection(record.person)) is not None:
        return _assignment_rejected(c, reason, policy, None)
    unit = state.units.get(c.care_unit_id)
    chef = unit.verksamhetschef_hsa_id if unit is not None else None
    if chef is not None and c.appointed_by_hsa_id != chef:
        return _assignment_rejected(c, RejectionReason.NOT_APPOINTED_BY_VERKSAMHETSCHEF, policy, None)
    if any(
        v.practitioner_id == c.practitioner_id and v.care_unit_id == c.care_unit_id
        for v in record.open_fast_vardkontakter
    ):
        return _assignment_rejected(c, RejectionReason.FAST_VARDKONTAKT_ALREADY_APPOINTED, policy, None)
    return [
        ev.FastVardkontaktAppointed(
            patient_key=c.patient_key,
            care_unit_id=c.care_unit_id,
            practitioner_id=c.practitioner_id,
            profession=c.profession,
            appointed_by_hsa_id=c.appointed_by_hsa_id,
            appointed_on=c.effective_date,
        )
    ]


def decide_end_vardkontakt(state: ListingState, c: cmd.EndFastVardkontakt, policy: PolicyProfile) -> Events:
    record = state.patients.get(c.patient_key)
    if record is None:
        return _assignment_rejected(c, RejectionReason.PERSON_UNKNOWN, policy, None)
    if not any(
        v.practitioner_id == c.practitioner_id and v.care_unit_id == c.care_unit_id
        for v in record.open_fast_vardkontakter
    ):
        return _assignment_rejected(c, RejectionReason.NO_SUCH_FAST_VARDKONTAKT, policy, None)
    return [
        ev.FastVardkontaktEnded(
            patient_key=c.patient_key,
            care_unit_id=c.care_unit_id,
            practitioner_id=c.practitioner_id,
            ended_on=c.effective_date,
            reason=c.reason,
        )
    ]


# --------------------------------------------------------------------------- register commands


def _record_rejected(subject_id: str, on: date, reason: RejectionReason, policy: PolicyProfile) -> Events:
    return [ev.RecordRejected(subject_id=subject_id, effective_date=on, reason=reason, decided_under=policy.ref)]


def decide_role_ended(state: ListingState, c: cmd.RecordPractitionerRoleEnded, policy: PolicyProfile) -> Events:
    """F8: the lists stay, every listing stays; assignments on the doctor's named lists end (``doctor_left``).

    Not a patient-initiated switch: no listing event, nothing counts toward L5. Idempotent: a role
    already ended on or before the date gives no events.
    """
    role = state.roles.get(c.role_id)
    if role is None:
        return _record_rejected(c.role_id, c.effective_date, RejectionReason.ROLE_UNKNOWN, policy)
    if role.period.end is not None and role.period.end <= c.effective_date:
        return []
    events: Events = [
        ev.PractitionerRoleEnded(
            role_id=role.role_id,
            practitioner_id=role.practitioner_id,
            care_unit_id=role.care_unit_id,
            ended_on=c.effective_date,
        )
    ]
    if not policy.f8_end_assignments_when_role_ends:
        return events
    role_lists = {
        lst.list_id for lst in state.lists.values() if lst.role_id == role.role_id and lst.kind is ListKind.DOCTOR
    }
    for key in sorted(state.patients):
        record = state.patients[key]
        ending = tuple(a for a in record.open_assignments if a.list_id in role_lists)
        if ending:
            events += end_assignments(record, ending, c.effective_date, FlkEndReason.DOCTOR_LEFT)
    return events


@dataclass(frozen=True, slots=True)
class _Departure:
    """How leaving the region's population ends things (P1, and moving out of the region)."""

    status: PopulationStatus
    already: frozenset[PopulationStatus]  # statuses after which the message changes nothing
    listing_reason: ListingEndReason
    flk_reason: FlkEndReason
    vardkontakt_reason: FastVardkontaktEndReason


_DECEASED = _Departure(
    PopulationStatus.DECEASED,
    frozenset({PopulationStatus.DECEASED}),
    ListingEndReason.DECEASED,
    FlkEndReason.DECEASED,
    FastVardkontaktEndReason.DECEASED,
)
_EMIGRATED = _Departure(
    PopulationStatus.EMIGRATED,
    frozenset({PopulationStatus.DECEASED, PopulationStatus.EMIGRATED}),
    ListingEndReason.EMIGRATED,
    FlkEndReason.EMIGRATED,
    FastVardkontaktEndReason.EMIGRATED,
)
_MOVED_OUT = _Departure(
    PopulationStatus.MOVED_OUT_OF_REGION,
    frozenset({PopulationStatus.DECEASED, PopulationStatus.EMIGRATED, PopulationStatus.MOVED_OUT_OF_REGION}),
    ListingEndReason.MOVED_OUT_OF_REGION,
    FlkEndReason.LISTING_ENDED,  # the contract has no "moved" FLK reason: the listing ended
    FastVardkontaktEndReason.MOVED_OUT_OF_REGION,
)


def _leaves_population(
    state: ListingState,
    patient_key: str,
    on: date,
    policy: PolicyProfile,
    departure: _Departure,
    fact: ev.Event,
    ends_care: bool = True,
) -> Events:
    """P1: end the listing, every FLK and fast vårdkontakt; history stays; idempotent."""
    record = state.patients.get(patient_key)
    if record is None:
        return _record_rejected(patient_key, on, RejectionReason.PERSON_UNKNOWN, policy)
    if record.person.population_status in departure.already:
        return []
    events: Events = [fact]
    if not ends_care:
        return events
    listing_reason, flk_reason = departure.listing_reason, departure.flk_reason
    vk_reason = departure.vardkontakt_reason
    if (pending := record.open_pending_listing) is not None:  # P3: nobody is asked to consent any more
        events.append(_consent_closed(patient_key, pending, on, ConsentOutcome.CANCELLED))
    current = record.open_listing
    if current is not None:
        events.append(
            ev.ListingEnded(
                patient_key=patient_key, care_unit_id=current.care_unit_id, ended_on=on, reason=listing_reason
            )
        )
    events += end_assignments(record, record.open_assignments, on, flk_reason)
    events += [
        ev.FastVardkontaktEnded(
            patient_key=patient_key,
            care_unit_id=v.care_unit_id,
            practitioner_id=v.practitioner_id,
            ended_on=on,
            reason=vk_reason,
        )
        for v in record.open_fast_vardkontakter
    ]
    return events


def decide_deceased(state: ListingState, c: cmd.RecordPersonDeceased, policy: PolicyProfile) -> Events:
    fact = ev.PersonDeceased(patient_key=c.patient_key, effective_date=c.effective_date)
    return _leaves_population(state, c.patient_key, c.effective_date, policy, _DECEASED, fact)


def decide_emigrated(state: ListingState, c: cmd.RecordPersonEmigrated, policy: PolicyProfile) -> Events:
    fact = ev.PersonEmigrated(patient_key=c.patient_key, effective_date=c.effective_date)
    return _leaves_population(state, c.patient_key, c.effective_date, policy, _EMIGRATED, fact)


def decide_moved_out(state: ListingState, c: cmd.RecordPersonMovedOutOfRegion, policy: PolicyProfile) -> Events:
    """Moved to another region: ends the listing when the profile says so (project choice, L4)."""
    fact = ev.PersonMovedOutOfRegion(patient_key=c.patient_key, effective_date=c.effective_date)
    return _leaves_population(
        state,
        c.patient_key,
        c.effective_date,
        policy,
        _MOVED_OUT,
        fact,
        ends_care=policy.l4_end_listing_when_moved_out_of_region,
    )


def decide_protected_identity(state: ListingState, c: cmd.RecordProtectedIdentity, policy: PolicyProfile) -> Events:
    record = state.patients.get(c.patient_key)
    if record is None:
        return _record_rejected(c.patient_key, c.effective_date, RejectionReason.PERSON_UNKNOWN, policy)
    if record.person.protected_identity == c.protected:
        return []
    return [
        ev.ProtectedIdentityRecorded(patient_key=c.patient_key, protected=c.protected, effective_date=c.effective_date)
    ]


def decide_sabo(state: ListingState, c: cmd.RecordSaboResidence, policy: PolicyProfile) -> Events:
    record = state.patients.get(c.patient_key)
    if record is None:
        return _record_rejected(c.patient_key, c.effective_date, RejectionReason.PERSON_UNKNOWN, policy)
    if record.person.sabo_resident == c.resident:
        return []
    return [ev.SaboResidenceRecorded(patient_key=c.patient_key, resident=c.resident, effective_date=c.effective_date)]


# --------------------------------------------------------------------------- dispatch

DECIDERS: dict[type, Callable[[ListingState, Any, PolicyProfile], Events]] = {
    cmd.RequestListing: decide_request_listing,
    cmd.AnswerListingConsent: decide_answer_consent,
    cmd.ExpireListingConsent: decide_expire_consent,
    cmd.EndListing: decide_end_listing,
    cmd.AssignFastLakarkontakt: decide_assign_flk,
    cmd.EndFastLakarkontakt: decide_end_flk,
    cmd.DeclineFastLakarkontakt: decide_decline_flk,
    cmd.RequestFastVardkontakt: decide_request_vardkontakt,
    cmd.AppointFastVardkontakt: decide_appoint_vardkontakt,
    cmd.EndFastVardkontakt: decide_end_vardkontakt,
    cmd.RecordPractitionerRoleEnded: decide_role_ended,
    cmd.RecordPersonDeceased: decide_deceased,
    cmd.RecordPersonEmigrated: decide_emigrated,
    cmd.RecordPersonMovedOutOfRegion: decide_moved_out,
    cmd.RecordProtectedIdentity: decide_protected_identity,
    cmd.RecordSaboResidence: decide_sabo,
}


def decide(state: ListingState, command: cmd.Command, policy: PolicyProfile) -> Events:
    """Decide a command under the policy version valid on its effective date.

    Raises :class:`PolicyNotApplicable` if ``policy`` is not that version (a wiring error, not a
    rejection), and ``TypeError`` for an unknown command type.
    """
    if not policy.applies_on(command.effective_date):
        raise PolicyNotApplicable(f"{policy.ref} does not apply on {command.effective_date.isoformat()}")
    try:
        decider = DECIDERS[type(command)]
    except KeyError:
        raise TypeError(f"decide: unknown command type {type(command).__name__}") from None
    return decider(state, command, policy)


def decide_under(
    state: ListingState,
    command: cmd.Command,
    profile_name: str,
    profiles: Any = PROFILES,
) -> Events:
    """Resolve the version of ``profile_name`` valid on the command's date, then decide."""
    return decide(state, command, profile_for(profile_name, command.effective_date, profiles))
