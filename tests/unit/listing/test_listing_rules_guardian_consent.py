"""P3: a minor's listing by one of two guardians waits for the other guardian's consent.

Who the guardians are comes from the population register (``Person.guardian_keys``), not from the
caller. A request by one of them that passes every other rule is pending (``ListingAwaitingConsent``);
the other guardian's consent runs the ordinary listing decision on the consent's date; a refusal or
the expiry (``p3_consent_wait_days``) ends it with its own reason and a rejection.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from listing_builders import CHILD, DAY, UNIT_A, UNIT_B, listed, only_rejection, person, run, types_of, world
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.model import (
    ConsentOutcome,
    GuardianDecision,
    Initiator,
    ListingOrigin,
    PopulationStatus,
)
from services.listing.domain.policy import profile_for
from services.listing.domain.reasons import RejectionReason, RuleId
from services.listing.domain.rules import decide

pytestmark = pytest.mark.unit

MOTHER, FATHER, NEIGHBOUR = "g-mother", "g-father", "g-neighbour"
WAIT = profile_for("vastmanland", DAY).p3_consent_wait_days


def two_guardians(**kw: object):
    return world(person(CHILD, birth=date(2015, 4, 2), guardians=frozenset({MOTHER, FATHER}), **kw))


def by_mother(unit: str = UNIT_A, on: date = DAY, **kw: object) -> cmd.RequestListing:
    kw.setdefault("consenting_guardian_keys", frozenset({MOTHER}))
    return cmd.RequestListing(patient_key=CHILD, care_unit_id=unit, effective_date=on, **kw)


def answer(guardian: str = FATHER, on: date = DAY + timedelta(days=3), unit: str = UNIT_A,
           decision: GuardianDecision = GuardianDecision.CONSENT) -> cmd.AnswerListingConsent:
    return cmd.AnswerListingConsent(patient_key=CHILD, care_unit_id=unit, guardian_key=guardian, effective_date=on,
                                    decision=decision)


def pending_state():
    events, state = run(two_guardians(), by_mother())
    assert types_of(events) == [ev.ListingAwaitingConsent]
    return state


def test_P3_listing_waits_for_the_second_guardian() -> None:
    events, state = run(two_guardians(), by_mother())

    [waiting] = events
    assert isinstance(waiting, ev.ListingAwaitingConsent)
    assert (waiting.care_unit_id, waiting.requested_on, waiting.expires_on) == (UNIT_A, DAY, DAY + timedelta(days=WAIT))
    assert waiting.consented_guardian_keys == {MOTHER} and waiting.awaiting_guardian_keys == {FATHER}
    record = state.patients[CHILD]
    assert record.open_listing is None and record.open_pending_listing is not None

    consent_day = DAY + timedelta(days=3)
    events, state = run(state, answer(FATHER, consent_day))
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingStarted]
    assert events[0].outcome is ConsentOutcome.CONSENTED and events[0].closed_on == consent_day
    started = events[1]
    assert (started.care_unit_id, started.started_on) == (UNIT_A, consent_day)  # decided on the consent's date
    assert state.patients[CHILD].open_listing.care_unit_id == UNIT_A
    assert state.patients[CHILD].open_pending_listing is None


def test_P3_the_register_decides_how_many_guardians_not_the_caller() -> None:
    # the caller declares one guardian; the register knows two: the request waits
    declared_one = by_mother(guardian_count=1)
    assert types_of(run(two_guardians(), declared_one)[0]) == [ev.ListingAwaitingConsent]
    # the register knows one guardian; the caller declares two: listed at once
    one = world(person(CHILD, birth=date(2015, 4, 2), guardians=frozenset({MOTHER})))
    assert types_of(run(one, by_mother(guardian_count=2))[0]) == [ev.ListingStarted]
    # both guardians in the request: listed at once
    both = by_mother(consenting_guardian_keys=frozenset({MOTHER, FATHER}))
    assert types_of(run(two_guardians(), both)[0]) == [ev.ListingStarted]


def test_P3_without_a_guardianship_fact_the_callers_count_is_used_as_in_v1() -> None:
    silent = world(person(CHILD, birth=date(2015, 4, 2)))  # guardian_keys None
    assert only_rejection(run(silent, by_mother(guardian_count=2))[0]).reason is RejectionReason.GUARDIAN_CONSENT_MISSING
    assert types_of(run(silent, by_mother(guardian_count=1))[0]) == [ev.ListingStarted]


def test_P3_a_request_or_consent_by_someone_who_is_not_a_guardian_is_rejected() -> None:
    by_neighbour = by_mother(consenting_guardian_keys=frozenset({NEIGHBOUR}))
    rejection = only_rejection(run(two_guardians(), by_neighbour)[0])
    assert rejection.reason is RejectionReason.CONSENT_BY_NON_GUARDIAN and rejection.rule_id is RuleId.P3

    state = pending_state()
    events, after = run(state, answer(NEIGHBOUR))
    assert only_rejection(events).reason is RejectionReason.CONSENT_BY_NON_GUARDIAN
    assert after.patients[CHILD].open_pending_listing == state.patients[CHILD].open_pending_listing


def test_P3_the_second_guardian_refusing_ends_the_request_with_its_own_reason() -> None:
    events, state = run(pending_state(), answer(FATHER, decision=GuardianDecision.REFUSE))
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingRejected]
    assert events[0].outcome is ConsentOutcome.REFUSED
    assert events[1].reason is RejectionReason.GUARDIAN_REFUSED and events[1].rule_id is RuleId.P3
    record = state.patients[CHILD]
    assert record.open_pending_listing is None and record.open_listing is None


def test_P3_the_request_expires_after_the_profiles_wait() -> None:
    state = pending_state()
    expires = DAY + timedelta(days=WAIT)
    assert decide(state, cmd.ExpireListingConsent(patient_key=CHILD, effective_date=expires - timedelta(days=1)),
                  profile_for("vastmanland", expires)) == []

    events, after = run(state, cmd.ExpireListingConsent(patient_key=CHILD, effective_date=expires + timedelta(days=2)))
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingRejected]
    assert events[0].outcome is ConsentOutcome.EXPIRED and events[0].closed_on == expires  # not the sweep's day
    assert events[1].reason is RejectionReason.GUARDIAN_CONSENT_EXPIRED
    assert after.patients[CHILD].open_pending_listing is None
    # the sweep again: nothing left to expire
    assert run(after, cmd.ExpireListingConsent(patient_key=CHILD, effective_date=expires + timedelta(days=3)))[0] == []


def test_P3_a_consent_after_the_wait_expires_the_request_instead_of_listing() -> None:
    events, _ = run(pending_state(), answer(FATHER, DAY + timedelta(days=WAIT)))
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingRejected]
    assert events[1].reason is RejectionReason.GUARDIAN_CONSENT_EXPIRED


def test_P3_the_wait_is_a_profile_setting() -> None:
    short = replace(profile_for("vastmanland", DAY), p3_consent_wait_days=7)
    [waiting] = decide(two_guardians(), by_mother(), short)
    assert waiting.expires_on == DAY + timedelta(days=7)


def test_P3_a_consent_arriving_twice_lists_the_child_once() -> None:
    _, state = run(pending_state(), answer(FATHER))
    events, after = run(state, answer(FATHER, DAY + timedelta(days=4)))
    assert only_rejection(events).reason is RejectionReason.NO_PENDING_LISTING_REQUEST
    assert len(after.patients[CHILD].listings) == 1
    # the requesting guardian consenting again while it waits
    assert only_rejection(run(pending_state(), answer(MOTHER))[0]).reason is RejectionReason.CONSENT_ALREADY_GIVEN


def test_P3_a_consent_for_another_unit_finds_no_pending_request() -> None:
    assert only_rejection(run(pending_state(), answer(unit=UNIT_B))[0]).reason is (
        RejectionReason.NO_PENDING_LISTING_REQUEST)


def test_P3_the_consent_runs_every_listing_rule_on_its_own_date() -> None:
    state = pending_state()
    # the child is placed by the region meanwhile: the pending request is superseded
    placed = cmd.RequestListing(patient_key=CHILD, care_unit_id=UNIT_B, effective_date=DAY + timedelta(days=1),
                                initiated_by=Initiator.REGION, origin=ListingOrigin.NO_CHOICE_PLACEMENT)
    events, after = run(state, placed)
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingStarted]
    assert events[0].outcome is ConsentOutcome.SUPERSEDED
    assert only_rejection(run(after, answer())[0]).reason is RejectionReason.NO_PENDING_LISTING_REQUEST

    # the child was listed at the unit meanwhile (another channel): the consent is rejected by L1 on its date
    relisted = listed(pending_state(), key=CHILD, unit=UNIT_A, on=DAY + timedelta(days=1),
                      consenting_guardian_keys=frozenset({MOTHER, FATHER}))
    assert relisted.patients[CHILD].open_pending_listing is None  # superseded by the accepted one


def test_P3_a_rule_that_rejects_on_the_consent_date_closes_the_request_as_rejected() -> None:
    state = pending_state()
    closed_unit = replace(state.units[UNIT_A], contracts=(replace(state.units[UNIT_A].contracts[0],
                                                                  end=DAY + timedelta(days=2)),))
    state = replace(state, units={**state.units, UNIT_A: closed_unit})
    events, after = run(state, answer(FATHER, DAY + timedelta(days=5)))
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingRejected]
    assert events[0].outcome is ConsentOutcome.REJECTED and events[1].reason is RejectionReason.NO_CONTRACT_ON_DATE
    assert after.patients[CHILD].open_pending_listing is None


def test_P3_the_childs_status_changing_while_pending() -> None:
    # death (P1): the request is cancelled with the rest
    events, after = run(pending_state(), cmd.RecordPersonDeceased(patient_key=CHILD, effective_date=DAY + timedelta(days=2)))
    assert types_of(events) == [ev.PersonDeceased, ev.ListingConsentClosed]
    assert events[1].outcome is ConsentOutcome.CANCELLED and after.patients[CHILD].open_pending_listing is None

    # the register's guardianship changes: the consent is checked against the register on its date
    state = pending_state()
    record = state.patients[CHILD]
    new_guardians = replace(record.person, guardian_keys=frozenset({MOTHER, "g-new"}))
    state = state.with_patient(replace(record, person=new_guardians))
    assert only_rejection(run(state, answer(FATHER))[0]).reason is RejectionReason.CONSENT_BY_NON_GUARDIAN
    assert types_of(run(state, answer("g-new"))[0]) == [ev.ListingConsentClosed, ev.ListingStarted]

    # a third guardian appears (register): the consent is recorded and the request waits for the third
    three = state.with_patient(replace(record, person=replace(record.person,
                                                              guardian_keys=frozenset({MOTHER, FATHER, "g-third"}))))
    events, after = run(three, answer(FATHER))
    assert types_of(events) == [ev.ListingAwaitingConsent]
    assert events[0].consented_guardian_keys == {MOTHER, FATHER} and events[0].awaiting_guardian_keys == {"g-third"}
    assert events[0].requested_on == DAY and len(after.patients[CHILD].pending_listings) == 1

    # moved out of the region (ends the listing under the profile): cancelled too
    events, _ = run(pending_state(), cmd.RecordPersonMovedOutOfRegion(patient_key=CHILD,
                                                                      effective_date=DAY + timedelta(days=2)))
    assert ConsentOutcome.CANCELLED in [e.outcome for e in events if isinstance(e, ev.ListingConsentClosed)]


def test_P3_a_new_request_while_one_waits_replaces_it() -> None:
    events, state = run(pending_state(), by_mother(unit=UNIT_B, on=DAY + timedelta(days=2)))
    assert types_of(events) == [ev.ListingConsentClosed, ev.ListingAwaitingConsent]
    assert events[0].outcome is ConsentOutcome.SUPERSEDED
    assert state.patients[CHILD].open_pending_listing.care_unit_id == UNIT_B
    # a rejected request leaves the waiting one alone
    deceased_unit = by_mother(unit="SE-NOPE", on=DAY + timedelta(days=2))
    events, after = run(pending_state(), deceased_unit)
    assert only_rejection(events).reason is RejectionReason.UNIT_UNKNOWN
    assert after.patients[CHILD].open_pending_listing is not None


def test_P3_other_rules_are_checked_before_the_request_waits() -> None:
    emigrated = two_guardians(status=PopulationStatus.EMIGRATED)
    assert only_rejection(run(emigrated, by_mother())[0]).reason is RejectionReason.PERSON_EMIGRATED


def test_P3_one_guardians_consent_is_enough_where_the_profile_says_so() -> None:
    one_enough = replace(profile_for("national", DAY), p3_all_guardians_must_consent=False)
    assert types_of(decide(two_guardians(), by_mother(), one_enough)) == [ev.ListingStarted]


# --------------------------------------------------------------------------- the listing import (flk listing import)


def _import_row(unit: str = UNIT_A):
    from flk.security.pseudonym import PersonId
    from tools.simulator.generate import personnummer12
    from services.listing.domain.import_check import ImportRow, Target

    return ImportRow(2, PersonId("personnummer", personnummer12(date(2015, 4, 2), 123)), unit, Target.NONE)


def test_P3_an_imported_minors_listing_is_a_region_placement_listed_without_consents() -> None:
    """The extract is the source register's listings (made under its consent checks) and carries no
    consents: the row is a region placement, to which P3 does not apply, whatever the guardians."""
    from services.listing.domain.import_check import listing_command

    state = two_guardians()
    command = listing_command(CHILD, _import_row(), state.patients[CHILD], DAY)
    assert command.consenting_guardian_keys == frozenset() and command.initiated_by is Initiator.REGION
    events, after = run(state, command)
    assert types_of(events) == [ev.ListingStarted]
    assert after.patients[CHILD].open_listing.origin is ListingOrigin.IMPORT


@pytest.mark.parametrize("unit", [UNIT_A, UNIT_B])
def test_P3_an_import_does_not_decide_a_request_waiting_for_a_guardian_it_skips_the_row_with_the_reason(unit) -> None:
    from services.listing.domain.import_check import Outcome, Violation, listing_command

    state = pending_state()
    verdict = listing_command(CHILD, _import_row(unit), state.patients[CHILD], DAY + timedelta(days=1))
    assert verdict is Violation.AWAITING_GUARDIAN_CONSENT
    assert (verdict.value, verdict.rule_id, verdict.outcome) == (
        "guardian_consent_pending_in_register", RuleId.P3, Outcome.SKIPPED)
    assert "consent" in verdict.message_en and "samtycke" in verdict.message_sv

    # once the request has closed (here: refused), the row is imported
    _, closed = run(state, answer(FATHER, decision=GuardianDecision.REFUSE))
    command = listing_command(CHILD, _import_row(unit), closed.patients[CHILD], DAY + timedelta(days=5))
    events, _ = run(closed, command)
    assert types_of(events) == [ev.ListingStarted]
