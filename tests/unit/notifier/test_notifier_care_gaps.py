"""Specification of care-gap detection (docs/domain.md §3 F3, F7, F8, P1; §6)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.notifier.domain.care_gaps import (
    CareGapOpened,
    CareGapResolved,
    CarePolicy,
    FlkAssignedFact,
    FlkDeclinedFact,
    FlkEndedFact,
    FlkEndReason,
    GapCause,
    GapResolution,
    ListingEndedFact,
    ListingEndReason,
    ListingStartedFact,
    PatientCareState,
    PersonStatusFact,
    ResidenceFact,
    RiskAssessedFact,
    Tick,
    apply,
    initial_state,
    next_wakeup,
    tick,
)

pytestmark = pytest.mark.unit

UTC = timezone.utc
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PNR = "191212121212"  # Skatteverket's test personnummer (pseudonymous key stand-in)
POLICY = CarePolicy()  # grace 14 days, declined not a gap, RUB >= 4, SÄBO included


def listed(unit="U1", at=T0, listing_id=None, key=PNR):
    return ListingStartedFact(key, listing_id or f"L-{unit}-{at:%Y%m%d}", unit, at)


def unlisted(unit="U1", at=T0, listing_id=None, reason=ListingEndReason.UNLISTED, started=T0, key=PNR):
    return ListingEndedFact(key, listing_id or f"L-{unit}-{started:%Y%m%d}", unit, at, reason)


def rub(value, at=T0 - DAY, key=PNR):
    return RiskAssessedFact(key, value, at)


def flk(assignment="A1", unit="U1", at=T0, fictive=False, key=PNR):
    return FlkAssignedFact(key, assignment, unit, "doctor-1", at, is_fictive=fictive)


def flk_ended(assignment="A1", unit="U1", at=T0, reason=FlkEndReason.DOCTOR_LEFT, key=PNR):
    return FlkEndedFact(key, assignment, unit, at, reason)


class Patient:
    """A scenario builder: feed facts at processing times, collect the events."""

    def __init__(self, policy: CarePolicy = POLICY, key: str = PNR) -> None:
        self.policy = policy
        self.state: PatientCareState = initial_state(key)
        self.events: list = []

    def at(self, now: datetime, *facts) -> list:
        new: list = []
        for fact in facts or (Tick(now),):
            self.state, events = apply(self.state, fact, now, self.policy)
            new += events
        self.events += new
        return new

    @property
    def opened(self) -> list[CareGapOpened]:
        return [e for e in self.events if isinstance(e, CareGapOpened)]

    @property
    def resolved(self) -> list[CareGapResolved]:
        return [e for e in self.events if isinstance(e, CareGapResolved)]


def high_need_listed_patient(policy: CarePolicy = POLICY, unit="U1") -> Patient:
    p = Patient(policy)
    p.at(T0, rub(5), listed(unit))
    return p


# ---- opening, grace period, causes --------------------------------------------------------


def test_gap_opens_with_cause_never_assigned_after_grace_period_for_rub_5_patient():
    p = high_need_listed_patient()
    [opened] = p.at(T0 + 14 * DAY)
    assert opened.cause is GapCause.NEVER_ASSIGNED
    assert (opened.unit_id, opened.rub, opened.sabo) == ("U1", 5, False)
    assert opened.patient_key == PNR
    assert p.state.open_gap is not None and p.state.open_gap.gap_id == opened.gap_id


def test_no_gap_opens_before_grace_period_after_listing_has_passed():
    p = high_need_listed_patient()
    assert p.events == []
    assert p.at(T0 + 14 * DAY - timedelta(seconds=1)) == []
    assert len(p.at(T0 + 14 * DAY)) == 1


def test_gap_opened_at_is_listing_start_plus_grace_even_when_detected_later():
    p = high_need_listed_patient()
    [opened] = p.at(T0 + 20 * DAY)
    assert opened.opened_at == T0 + 14 * DAY


def test_gap_opened_at_is_when_patient_began_to_qualify_after_grace():
    p = Patient()
    p.at(T0, listed(), rub(2))
    assessed = T0 + 100 * DAY
    [opened] = p.at(assessed + DAY, rub(4, at=assessed))
    assert opened.opened_at == assessed
    assert opened.rub == 4


def test_grace_period_is_a_setting_and_zero_opens_at_once():
    p = Patient(CarePolicy(grace_days=0))
    [opened] = p.at(T0, rub(5), listed())
    assert opened.opened_at == T0


def test_next_wakeup_is_the_end_of_the_grace_period():
    p = high_need_listed_patient()
    assert next_wakeup(p.state, T0, POLICY) == T0 + 14 * DAY
    p.at(T0 + 14 * DAY)
    assert next_wakeup(p.state, T0 + 14 * DAY, POLICY) is None


def test_gap_opens_with_cause_locum_list_when_only_fictive_list():
    p = Patient()
    p.at(T0, rub(4), listed(), flk("LOCUM", fictive=True))
    [opened] = p.at(T0 + 15 * DAY)
    assert opened.cause is GapCause.LOCUM_LIST


def test_gap_cause_doctor_left_after_flk_ended_by_doctor_leaving():
    p = Patient()
    p.at(T0, rub(5), listed(), flk("A1"))
    assert p.at(T0 + 30 * DAY) == []
    left = T0 + 40 * DAY
    [opened] = p.at(left, flk_ended("A1", at=left, reason=FlkEndReason.DOCTOR_LEFT))
    assert opened.cause is GapCause.DOCTOR_LEFT
    assert opened.opened_at == left


def test_doctor_leaving_within_grace_period_opens_gap_when_grace_ends():
    p = Patient()
    p.at(T0, rub(5), listed(), flk("A1"))
    assert p.at(T0 + 2 * DAY, flk_ended("A1", at=T0 + 2 * DAY)) == []
    [opened] = p.at(T0 + 14 * DAY)
    assert (opened.cause, opened.opened_at) == (GapCause.DOCTOR_LEFT, T0 + 14 * DAY)


def test_gap_cause_relisted_when_flk_at_previous_unit_ended_by_relisting():
    p = Patient()
    p.at(T0, rub(5), listed("U1"), flk("A1", unit="U1"))
    moved = T0 + 60 * DAY
    assert p.at(moved, listed("U2", at=moved)) == []
    [opened] = p.at(moved + 14 * DAY)
    assert (opened.unit_id, opened.cause) == ("U2", GapCause.RELISTED)


def test_gap_cause_never_assigned_when_patient_relists_without_having_had_flk():
    p = Patient(CarePolicy(grace_days=0))
    p.at(T0, rub(5), listed("U1"))
    moved = T0 + 60 * DAY
    new = p.at(moved, listed("U2", at=moved))
    assert [type(e) for e in new] == [CareGapResolved, CareGapOpened]
    assert new[1].cause is GapCause.NEVER_ASSIGNED


def test_gap_cause_flk_ended_when_flk_ended_for_another_reason():
    p = Patient()
    p.at(T0, rub(5), listed(), flk("A1"))
    ended = T0 + 30 * DAY
    [opened] = p.at(ended, flk_ended("A1", at=ended, reason=FlkEndReason.PATIENT_REQUEST))
    assert opened.cause is GapCause.FLK_ENDED


def test_cause_rub_and_sabo_are_recorded_at_opening_and_not_changed_while_open():
    p = Patient()
    p.at(T0, rub(4), listed(), ResidenceFact(PNR, sabo_from=T0 - 10 * DAY))
    [opened] = p.at(T0 + 14 * DAY)
    assert (opened.cause, opened.rub, opened.sabo) == (GapCause.NEVER_ASSIGNED, 4, True)
    assert p.at(T0 + 15 * DAY, flk("LOCUM", fictive=True, at=T0 + 15 * DAY), rub(5, at=T0 + 15 * DAY)) == []
    assert p.state.open_gap.cause is GapCause.NEVER_ASSIGNED


# ---- who qualifies ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 2, 3])
def test_patient_with_rub_below_4_and_not_in_sabo_has_no_gap(value):
    p = Patient()
    p.at(T0, rub(value), listed())
    assert p.at(T0 + 30 * DAY) == []


def test_patient_without_risk_assessment_and_not_in_sabo_has_no_gap():
    p = Patient()
    p.at(T0, listed())
    assert p.at(T0 + 30 * DAY) == []


def test_sabo_resident_with_low_rub_has_a_gap():
    p = Patient()
    p.at(T0, rub(1), listed(), ResidenceFact(PNR, sabo_from=T0 + 20 * DAY))
    assert p.at(T0 + 19 * DAY) == []
    [opened] = p.at(T0 + 20 * DAY)
    assert (opened.sabo, opened.rub, opened.opened_at) == (True, 1, T0 + 20 * DAY)


def test_sabo_residents_do_not_qualify_when_the_profile_excludes_sabo():
    p = Patient(CarePolicy(include_sabo=False))
    p.at(T0, listed(), ResidenceFact(PNR, sabo_from=T0))
    assert p.at(T0 + 30 * DAY) == []


def test_rub_threshold_is_a_setting():
    p = Patient(CarePolicy(rub_threshold=3))
    p.at(T0, rub(3), listed())
    assert len(p.at(T0 + 14 * DAY)) == 1


# ---- resolve paths ----------------------------------------------------------------------------


def open_gap_patient(policy: CarePolicy = POLICY) -> Patient:
    p = high_need_listed_patient(policy)
    p.at(T0 + 14 * DAY)
    assert p.state.open_gap is not None
    return p


def test_assigning_a_real_flk_resolves_gap():
    p = open_gap_patient()
    at = T0 + 20 * DAY
    [resolved] = p.at(at, flk("A9", at=at))
    assert resolved.gap_id == p.opened[0].gap_id
    assert (resolved.resolution, resolved.resolved_at) == (GapResolution.FAST_LAKARKONTAKT_ASSIGNED, at)
    assert p.state.open_gap is None


def test_assigning_only_a_fictive_locum_list_keeps_gap_open():
    p = open_gap_patient()
    assert p.at(T0 + 20 * DAY, flk("LOCUM", fictive=True, at=T0 + 20 * DAY)) == []
    assert p.state.open_gap is not None


def test_flk_at_another_unit_does_not_resolve_gap():
    p = open_gap_patient()
    assert p.at(T0 + 20 * DAY, flk("A9", unit="U9", at=T0 + 20 * DAY)) == []


def test_an_flk_at_another_unit_outlives_a_relisting_and_counts_once_the_patient_is_listed_there():
    """Kronoberg (seed 003): an FLK where the patient's main contact is stays when the patient relists
    elsewhere; relisted at that FLK's unit, the patient has an FLK there and no gap opens."""
    p = open_gap_patient()
    p.at(T0 + 20 * DAY, flk("A9", unit="U9", at=T0 + 20 * DAY))
    moved = T0 + 30 * DAY
    p.at(moved, listed("U2", at=moved))
    p.at(moved + 20 * DAY)  # no FLK at U2: a gap there after the grace period
    again = moved + 30 * DAY
    p.at(again, listed("U9", at=again))

    assert p.at(again + 60 * DAY) == [], "the FLK at U9 kept from before counts at U9"
    assert [o.unit_id for o in p.opened] == ["U1", "U2"]


def test_relisting_resolves_gap_at_old_unit_and_opens_at_new_after_grace():
    p = open_gap_patient()
    moved = T0 + 30 * DAY
    [resolved] = p.at(moved, listed("U2", at=moved))
    assert (resolved.unit_id, resolved.resolution) == ("U1", GapResolution.RELISTED)
    assert p.at(moved + 13 * DAY) == []
    [opened] = p.at(moved + 14 * DAY)
    assert opened.unit_id == "U2"
    assert opened.gap_id != p.opened[0].gap_id
    assert opened.opened_at == moved + 14 * DAY


def test_listing_ended_with_relisting_reason_resolves_as_relisted():
    p = open_gap_patient()
    [resolved] = p.at(T0 + 30 * DAY, unlisted(at=T0 + 30 * DAY, reason=ListingEndReason.RELISTED))
    assert resolved.resolution is GapResolution.RELISTED


def test_listing_ended_without_new_listing_resolves_as_listing_ended():
    p = open_gap_patient()
    [resolved] = p.at(T0 + 30 * DAY, unlisted(at=T0 + 30 * DAY))
    assert resolved.resolution is GapResolution.LISTING_ENDED


def test_death_resolves_gap_and_no_gap_opens_afterwards():
    p = open_gap_patient()
    died = T0 + 30 * DAY
    [resolved] = p.at(died, PersonStatusFact(PNR, died, deceased=True))
    assert resolved.resolution is GapResolution.DECEASED
    assert p.at(died + 40 * DAY, rub(5, at=died + DAY), listed("U3", at=died + DAY)) == []


def test_emigration_resolves_gap():
    p = open_gap_patient()
    [resolved] = p.at(T0 + 30 * DAY, PersonStatusFact(PNR, T0 + 30 * DAY, emigrated=True))
    assert resolved.resolution is GapResolution.EMIGRATED


def test_newer_low_rub_resolves_gap_as_no_longer_qualifies():
    p = open_gap_patient()
    [resolved] = p.at(T0 + 30 * DAY, rub(3, at=T0 + 29 * DAY))
    assert resolved.resolution is GapResolution.NO_LONGER_QUALIFIES
    assert resolved.resolved_at == T0 + 29 * DAY


def test_end_of_sabo_residence_resolves_gap_when_time_passes():
    p = Patient()
    p.at(T0, listed(), ResidenceFact(PNR, sabo_from=T0, sabo_to=T0 + 40 * DAY))
    [opened] = p.at(T0 + 14 * DAY)
    assert next_wakeup(p.state, T0 + 14 * DAY, POLICY) == T0 + 40 * DAY
    [resolved] = p.at(T0 + 40 * DAY)
    assert (resolved.gap_id, resolved.resolution) == (opened.gap_id, GapResolution.NO_LONGER_QUALIFIES)


def test_older_risk_assessment_arriving_late_does_not_override_newer():
    p = Patient()
    p.at(T0, listed(), rub(2, at=T0 - DAY))
    # a late RUB 5 computed before the RUB 2 must not open a gap ...
    assert p.at(T0 + 20 * DAY, rub(5, at=T0 - 100 * DAY)) == []
    assert p.state.latest_risk.rub == 2
    # ... and with a gap open, a late RUB 1 computed before the RUB 5 must not resolve it.
    q = open_gap_patient()
    assert q.at(T0 + 20 * DAY, rub(1, at=T0 - 50 * DAY)) == []
    assert q.state.open_gap is not None and q.state.latest_risk.rub == 5


# ---- declined (F7) ------------------------------------------------------------------------------


def test_declined_patient_is_not_missing_flk_by_default():
    p = Patient()
    p.at(T0, rub(5), listed(), FlkDeclinedFact(PNR, "U1", T0 + DAY))
    assert p.at(T0 + 30 * DAY) == []


def test_declining_resolves_open_gap_as_declined():
    p = open_gap_patient()
    [resolved] = p.at(T0 + 20 * DAY, FlkDeclinedFact(PNR, "U1", T0 + 20 * DAY))
    assert resolved.resolution is GapResolution.DECLINED


def test_declined_patient_counts_as_gap_when_the_regions_profile_says_a_decline_does_not_suppress_alerts():
    """The decline event carries the listing profile's F7 choice: the notifier has no setting of its own."""
    p = Patient()
    p.at(T0, rub(5), listed(), FlkDeclinedFact(PNR, "U1", T0 + DAY, suppresses_alerts=False))
    assert len(p.at(T0 + 14 * DAY)) == 1


def test_withdrawn_decline_reopens_a_new_gap():
    p = open_gap_patient()
    p.at(T0 + 20 * DAY, FlkDeclinedFact(PNR, "U1", T0 + 20 * DAY))
    [reopened] = p.at(T0 + 25 * DAY, FlkDeclinedFact(PNR, "U1", T0 + 25 * DAY, declined=False))
    assert reopened.opened_at == T0 + 25 * DAY
    assert reopened.gap_id != p.opened[0].gap_id


def test_decline_at_the_previous_unit_does_not_apply_after_relisting():
    p = Patient(CarePolicy(grace_days=0))
    p.at(T0, rub(5), listed("U1"), FlkDeclinedFact(PNR, "U1", T0))
    [opened] = p.at(T0 + DAY, listed("U2", at=T0 + DAY))
    assert opened.unit_id == "U2"


# ---- idempotency, redelivery, ordering -----------------------------------------------------------


def test_redelivered_fact_opens_no_second_gap():
    p = high_need_listed_patient()
    now = T0 + 14 * DAY
    assert len(p.at(now)) == 1
    for fact in (listed(), rub(5), Tick(now), listed(), flk("L", fictive=True), flk("L", fictive=True)):
        assert p.at(now, fact) == []
    assert len(p.opened) == 1


def test_applying_the_same_fact_twice_changes_nothing_the_second_time():
    p = open_gap_patient()
    fact = flk("A9", at=T0 + 20 * DAY)
    state, first = apply(p.state, fact, T0 + 20 * DAY, POLICY)
    again, second = apply(state, fact, T0 + 20 * DAY, POLICY)
    assert len(first) == 1 and second == [] and again == state


def test_replay_of_the_same_facts_gives_the_same_gap_ids():
    def run() -> list:
        p = Patient()
        p.at(T0, rub(5), listed(), flk("A1"))
        p.at(T0 + 20 * DAY, flk_ended("A1", at=T0 + 20 * DAY))
        p.at(T0 + 50 * DAY, listed("U2", at=T0 + 50 * DAY))
        p.at(T0 + 70 * DAY)
        return p.events

    first, second = run(), run()
    assert first == second and len(first) == 3


def test_a_second_gap_in_the_same_listing_gets_a_new_id():
    p = open_gap_patient()
    p.at(T0 + 20 * DAY, flk("A2", at=T0 + 20 * DAY))
    [reopened] = p.at(T0 + 40 * DAY, flk_ended("A2", at=T0 + 40 * DAY))
    assert reopened.cause is GapCause.DOCTOR_LEFT
    assert len({e.gap_id for e in p.opened}) == 2


def test_redelivered_flk_assignment_after_its_end_does_not_resurrect_it():
    p = Patient()
    p.at(T0, rub(5), listed(), flk("A1"))
    p.at(T0 + 20 * DAY, flk_ended("A1", at=T0 + 20 * DAY))
    assert p.at(T0 + 21 * DAY, flk("A1")) == []
    assert p.state.open_gap is not None


def test_late_listing_start_of_an_older_episode_is_ignored():
    p = open_gap_patient()
    old = listed("U0", at=T0 - 300 * DAY)
    assert p.at(T0 + 20 * DAY, old) == []
    assert p.state.listing.unit_id == "U1"


def test_flk_assigned_before_the_listing_event_counts_at_the_new_unit():
    p = Patient(CarePolicy(grace_days=0))
    p.at(T0, rub(5), flk("A1", unit="U1"))
    assert p.at(T0, listed("U1")) == []


def test_flk_ended_by_relisting_before_the_listing_event_opens_no_gap_at_old_unit():
    p = Patient()
    p.at(T0, rub(5), listed("U1"), flk("A1"))
    moved = T0 + 60 * DAY
    assert p.at(moved, flk_ended("A1", at=moved, reason=FlkEndReason.RELISTED)) == []
    assert p.at(moved, listed("U2", at=moved)) == []
    [opened] = p.at(moved + 14 * DAY)
    assert (opened.unit_id, opened.cause) == ("U2", GapCause.RELISTED)


def test_one_of_several_flks_ending_leaves_no_gap():
    # Kronoberg (F5): several FLKs; the patient still has a real one.
    p = Patient()
    p.at(T0, rub(5), listed(), flk("A1"), flk("A2"))
    assert p.at(T0 + 20 * DAY, flk_ended("A1", at=T0 + 20 * DAY)) == []


# ---- guards -----------------------------------------------------------------------------------


def test_fact_for_another_patient_is_rejected():
    with pytest.raises(ValueError):
        apply(initial_state(PNR), listed(key="other"), T0, POLICY)


def test_naive_datetimes_are_rejected():
    with pytest.raises(ValueError):
        ListingStartedFact(PNR, "L1", "U1", datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        tick(initial_state(PNR), datetime(2025, 1, 1), POLICY)


def test_policy_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        CarePolicy(grace_days=-1)
    with pytest.raises(ValueError):
        CarePolicy(rub_threshold=6)
