"""Listing rules L1–L7 and P3, one named test (or more) per rule id."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import date, timedelta

import pytest

from listing_builders import (
    ADULT,
    CHILD,
    DAY,
    OTHER_REGION,
    UNIT_A,
    UNIT_B,
    UNIT_CLOSED,
    accepted,
    listed,
    only_rejection,
    person,
    run,
    types_of,
    with_unit,
    world,
)
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.model import (
    CareUnit,
    Channel,
    ExemptionReason,
    Initiator,
    ListingEndReason,
    ListingLimit,
    ListingOrigin,
    Period,
    Person,
    PopulationStatus,
)
from services.listing.domain.policy import PolicyProfile, profile_for
from services.listing.domain.reasons import RejectionReason, RuleId
from services.listing.domain.rules import LISTING_CHECKS, decide

pytestmark = pytest.mark.unit


def request(key: str = ADULT, unit: str = UNIT_A, on: date = DAY, **kw: object) -> cmd.RequestListing:
    return cmd.RequestListing(patient_key=key, care_unit_id=unit, effective_date=on, **kw)


# ---------------------------------------------------------------- L1


def test_L1_new_listing_ends_the_previous_one_atomically() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2024, 1, 10))
    events, after = run(state, request(unit=UNIT_B, on=DAY))

    assert types_of(events) == [ev.ListingEnded, ev.ListingStarted]
    ended, started = events
    assert ended.care_unit_id == UNIT_A and ended.reason is ListingEndReason.RELISTED
    assert ended.ended_on == started.responsibility_from  # no gap, no overlap
    record = after.patients[ADULT]
    assert [lst.care_unit_id for lst in record.listings if lst.period.is_open] == [UNIT_B]
    assert after.listed_count_by_unit[UNIT_A] == 0 and after.listed_count_by_unit[UNIT_B] == 1
    assert len(record.listings) == 2  # history kept


def test_L1_listing_again_at_the_same_unit_is_rejected() -> None:
    state = listed(world())
    rejection = only_rejection(run(state, request(on=DAY + timedelta(days=5)))[0])
    assert rejection.reason is RejectionReason.ALREADY_LISTED_AT_UNIT and rejection.rule_id is RuleId.L1


def test_L1_backdated_listing_is_rejected() -> None:
    state = listed(world(), on=DAY)
    rejection = only_rejection(run(state, request(unit=UNIT_B, on=DAY - timedelta(days=1)))[0])
    assert rejection.reason is RejectionReason.EFFECTIVE_DATE_BEFORE_CURRENT_LISTING


def test_L1_ending_a_listing_that_does_not_exist_is_rejected() -> None:
    events, _ = run(world(), cmd.EndListing(patient_key=ADULT, effective_date=DAY))
    assert only_rejection(events).reason is RejectionReason.NOT_LISTED


def test_L1_ending_a_listing_closes_it_and_keeps_history() -> None:
    state = listed(world())
    events, after = run(state, cmd.EndListing(patient_key=ADULT, effective_date=DAY + timedelta(days=30)))
    assert types_of(events) == [ev.ListingEnded]
    record = after.patients[ADULT]
    assert record.open_listing is None and len(record.listings) == 1
    assert after.listed_count_by_unit[UNIT_A] == 0


# ---------------------------------------------------------------- L2

GEOGRAPHIC_WORDS = ("distance", "avstand", "catchment", "upptag", "address", "adress", "municip", "kommun",
                    "coordinate", "latitude", "longitude", "postal", "zip", "area", "omrade", "geo")


def test_L2_listing_is_never_rejected_for_distance() -> None:
    # A person registered at one end of the region lists at a unit at the other end: accepted.
    # There is nothing geographic the rules could read: no field on the person, the unit, the
    # command or the profile, no rejection reason and no check under L2.
    far_unit = CareUnit("SE2321000222-FAR", "Vårdcentralen Långtbortom", "19", contracts=(Period(date(2015, 1, 1)),))
    state = with_unit(world(person(region="19")), far_unit)
    events, _ = run(state, request(unit=far_unit.hsa_id))
    assert types_of(events) == [ev.ListingStarted]

    for cls in (Person, CareUnit, cmd.RequestListing, PolicyProfile):
        for f in dataclasses.fields(cls):
            assert not any(w in f.name.lower() for w in GEOGRAPHIC_WORDS), f"{cls.__name__}.{f.name}"
    assert not [r for r in RejectionReason if r.rule_id is RuleId.L2]
    assert RuleId.L2 not in {rule for rule, _ in LISTING_CHECKS}


def test_L2_person_from_another_region_may_list_through_an_exception_group() -> None:
    state = world(person(region=OTHER_REGION))
    events, _ = run(state, request(residency_exception="other_region_choice"))
    assert types_of(events) == [ev.ListingStarted]


# ---------------------------------------------------------------- L3


def test_L3_unit_without_a_contract_on_the_date_is_rejected() -> None:
    rejection = only_rejection(run(world(), request(unit=UNIT_CLOSED))[0])
    assert rejection.reason is RejectionReason.NO_CONTRACT_ON_DATE and rejection.rule_id is RuleId.L3


def test_L3_unit_with_a_contract_on_the_date_is_accepted() -> None:
    events, _ = run(world(), request(unit=UNIT_CLOSED, on=date(2022, 6, 1)))
    assert types_of(events) == [ev.ListingStarted]


def test_L3_contract_must_cover_the_day_responsibility_starts() -> None:
    ending = CareUnit("SE-END", "VC Slutar", "19", contracts=(Period(date(2015, 1, 1), DAY + timedelta(days=1)),))
    state = with_unit(world(), ending)
    assert only_rejection(run(state, request(unit="SE-END"))[0]).reason is RejectionReason.NO_CONTRACT_ON_DATE


def test_L3_unknown_unit_is_rejected() -> None:
    rejection = only_rejection(run(world(), request(unit="SE-NOPE"))[0])
    assert rejection.reason is RejectionReason.UNIT_UNKNOWN and rejection.rule_id is RuleId.L3


# ---------------------------------------------------------------- L4


def test_L4_person_not_folkbokford_in_the_region_is_rejected() -> None:
    rejection = only_rejection(run(world(person(region=OTHER_REGION)), request())[0])
    assert rejection.reason is RejectionReason.NOT_FOLKBOKFORD_IN_REGION and rejection.rule_id is RuleId.L4


def test_L4_person_who_moved_out_of_the_region_is_rejected() -> None:
    state = world(person(status=PopulationStatus.MOVED_OUT_OF_REGION))
    assert only_rejection(run(state, request())[0]).reason is RejectionReason.NOT_FOLKBOKFORD_IN_REGION


def test_L4_unconfigured_exception_group_does_not_help() -> None:
    state = world(person(region=OTHER_REGION))
    events, _ = run(state, request(residency_exception="made_up_group"))
    assert only_rejection(events).reason is RejectionReason.NOT_FOLKBOKFORD_IN_REGION


def test_L4_newborn_not_yet_registered_in_the_region_is_an_exception_group() -> None:
    state = world(person(region=OTHER_REGION, birth=DAY - timedelta(days=10)))
    events, _ = run(state, request(initiated_by=Initiator.REGION, origin=ListingOrigin.ASSIGNED))
    assert types_of(events) == [ev.ListingStarted]


def test_L4_residency_requirement_is_a_profile_switch() -> None:
    policy = replace(profile_for("national", DAY), l4_residency_required=False)
    events = decide(world(person(region=OTHER_REGION)), request(), policy)
    assert types_of(events) == [ev.ListingStarted]


def test_L4_unknown_person_is_rejected() -> None:
    rejection = only_rejection(run(world(), request(key="nobody"))[0])
    assert rejection.reason is RejectionReason.PERSON_UNKNOWN and rejection.rule_id is RuleId.L4


# ---------------------------------------------------------------- L5


def switches(state, dates_units, **kw):  # type: ignore[no-untyped-def]
    for on, unit in dates_units:
        state = accepted(state, request(unit=unit, on=on, **kw))
    return state


def test_L5_third_own_switch_within_12_months_is_rejected() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))  # first listing: not a change
    state = switches(state, [(date(2023, 6, 1), UNIT_B), (date(2023, 9, 1), UNIT_A)])
    rejection = only_rejection(run(state, request(unit=UNIT_B, on=date(2024, 1, 15)))[0])
    assert rejection.reason is RejectionReason.SWITCH_LIMIT and rejection.rule_id is RuleId.L5
    assert "två" in rejection.message_sv and "two" in rejection.message_en


def test_L5_region_initiated_moves_do_not_count() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))
    state = switches(
        state,
        [(date(2023, 3, 1), UNIT_B), (date(2023, 4, 1), UNIT_A)],
        initiated_by=Initiator.REGION,
        origin=ListingOrigin.ASSIGNED,
        channel=Channel.ADMIN,
    )
    state = switches(state, [(date(2023, 6, 1), UNIT_B), (date(2023, 9, 1), UNIT_A)])  # two own
    assert only_rejection(run(state, request(unit=UNIT_B, on=date(2023, 10, 1)))[0]).reason is (
        RejectionReason.SWITCH_LIMIT
    )
    # ... and the region may still move the person
    events, _ = run(state, request(unit=UNIT_B, on=date(2023, 10, 1), initiated_by=Initiator.REGION,
                                   origin=ListingOrigin.ASSIGNED))
    assert ev.ListingStarted in types_of(events)


def test_L5_no_choice_placements_do_not_count() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))
    state = switches(state, [(date(2023, 2, 1), UNIT_B), (date(2023, 3, 1), UNIT_A)],
                     origin=ListingOrigin.NO_CHOICE_PLACEMENT, initiated_by=Initiator.REGION)
    state = switches(state, [(date(2023, 4, 1), UNIT_B), (date(2023, 5, 1), UNIT_A)])
    assert only_rejection(run(state, request(unit=UNIT_B, on=date(2023, 6, 1)))[0]).rule_id is RuleId.L5


@pytest.mark.parametrize("reason", list(ExemptionReason))
def test_L5_exemption_reason_allows_a_further_switch(reason: ExemptionReason) -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))
    state = switches(state, [(date(2023, 6, 1), UNIT_B), (date(2023, 9, 1), UNIT_A)])
    events, after = run(state, request(unit=UNIT_B, on=date(2023, 10, 1), exemption_reason=reason))
    started = events[-1]
    assert isinstance(started, ev.ListingStarted) and not started.counts_toward_switch_limit
    # and an exempted change does not use up the allowance later either
    assert after.patients[ADULT].changes[-1].exemption_reason is reason


def test_L5_window_is_a_rolling_12_months() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))
    state = switches(state, [(date(2023, 2, 1), UNIT_B), (date(2023, 9, 1), UNIT_A)])
    assert only_rejection(run(state, request(unit=UNIT_B, on=date(2024, 1, 31)))[0]).rule_id is RuleId.L5
    # window is (on - 12 months, on]: a change exactly 12 months ago has left it (project choice)
    events, _ = run(state, request(unit=UNIT_B, on=date(2024, 2, 1)))
    assert types_of(events)[-1] is ev.ListingStarted


def test_L5_enforcement_is_switchable_per_profile() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))
    state = switches(state, [(date(2023, 6, 1), UNIT_B), (date(2023, 9, 1), UNIT_A)])
    lenient = replace(profile_for("national", DAY), l5_enforced=False)
    events = decide(state, request(unit=UNIT_B, on=date(2023, 10, 1)), lenient)
    assert types_of(events)[-1] is ev.ListingStarted and events[-1].counts_toward_switch_limit


def test_L5_first_listing_and_relisting_after_a_gap_are_handled() -> None:
    state = listed(world(), unit=UNIT_A, on=date(2023, 1, 1))
    first = state.patients[ADULT]
    assert first.changes == ()  # the first listing is not a change
    state = accepted(state, cmd.EndListing(patient_key=ADULT, effective_date=date(2023, 2, 1)))
    events, _ = run(state, request(unit=UNIT_B, on=date(2023, 3, 1)))
    started = events[-1]
    assert started.previous_care_unit_id == UNIT_A and started.counts_toward_switch_limit  # ending first is no loophole


# ---------------------------------------------------------------- L6


def test_L6_responsibility_starts_the_day_after_registration() -> None:
    events, after = run(world(), request(on=DAY))
    started = events[0]
    assert started.started_on == DAY and started.responsibility_from == DAY + timedelta(days=1)
    assert after.patients[ADULT].listings[0].period.start == DAY + timedelta(days=1)


def test_L6_offset_is_configurable() -> None:
    same_day = replace(profile_for("national", DAY), l6_responsibility_offset_days=0)
    started = decide(world(), request(on=DAY), same_day)[0]
    assert started.responsibility_from == DAY


# ---------------------------------------------------------------- L7


def limited_unit(max_listed: int, exempt: frozenset[str] = frozenset(), period: Period | None = None) -> CareUnit:
    return CareUnit(
        "SE-LIM",
        "VC Tak",
        "19",
        contracts=(Period(date(2015, 1, 1)),),
        listing_limits=(ListingLimit(max_listed, period or Period(date(2024, 1, 1)), exempt),),
    )


def test_L7_unit_at_its_listing_limit_rejects_new_listings() -> None:
    state = replace(with_unit(world(), limited_unit(100)), listed_count_by_unit={"SE-LIM": 100})
    rejection = only_rejection(run(state, request(unit="SE-LIM"))[0])
    assert rejection.reason is RejectionReason.LISTING_LIMIT_REACHED and rejection.rule_id is RuleId.L7


FILIAL = CareUnit("SE-LIM-F1", "VC Tak, läkarfilial Byn", "19", contracts=(Period(date(2015, 1, 1)),),
                  main_unit_id="SE-LIM")


def test_L7_listings_at_a_filial_count_toward_its_main_units_limit() -> None:
    """Seed 004: a filial is a sub-unit of its main unit; the main unit's limit covers both."""
    state = with_unit(with_unit(world(), limited_unit(100)), FILIAL)
    full = replace(state, listed_count_by_unit={"SE-LIM": 60, "SE-LIM-F1": 40})
    room = replace(state, listed_count_by_unit={"SE-LIM": 60, "SE-LIM-F1": 39})

    for unit in ("SE-LIM", "SE-LIM-F1"):
        assert only_rejection(run(full, request(unit=unit))[0]).reason is RejectionReason.LISTING_LIMIT_REACHED
        assert types_of(run(room, request(unit=unit))[0]) == [ev.ListingStarted]


def test_L7_below_the_limit_is_accepted() -> None:
    state = replace(with_unit(world(), limited_unit(100)), listed_count_by_unit={"SE-LIM": 99})
    assert types_of(run(state, request(unit="SE-LIM"))[0]) == [ev.ListingStarted]


@pytest.mark.parametrize(
    "who",
    [
        person(CHILD, birth=DAY - timedelta(days=20)),  # newborn
        person(ADULT, sabo=True),  # SÄBO resident
    ],
    ids=["newborn", "sabo"],
)
def test_L7_exempt_groups_are_listed_above_the_limit(who: Person) -> None:
    unit = limited_unit(100, frozenset({"newborn", "sabo"}))
    state = replace(with_unit(world(who), unit), listed_count_by_unit={"SE-LIM": 100})
    events, _ = run(state, request(key=who.patient_key, unit="SE-LIM", initiated_by=Initiator.REGION,
                                   origin=ListingOrigin.ASSIGNED))
    assert types_of(events) == [ev.ListingStarted]


def test_L7_limit_applies_only_within_its_validity_dates() -> None:
    unit = limited_unit(1, period=Period(date(2023, 1, 1), date(2024, 1, 1)))
    state = replace(with_unit(world(), unit), listed_count_by_unit={"SE-LIM": 5})
    assert types_of(run(state, request(unit="SE-LIM", on=DAY))[0]) == [ev.ListingStarted]
    assert only_rejection(run(state, request(unit="SE-LIM", on=date(2023, 6, 1)))[0]).rule_id is RuleId.L7


# ---------------------------------------------------------------- P3


def child_state() -> object:
    return world(person(CHILD, birth=date(2015, 4, 2)))


def test_P3_minor_needs_consent_from_all_guardians() -> None:
    state = child_state()
    one = request(key=CHILD, consenting_guardian_keys=frozenset({"g1"}), guardian_count=2)
    rejection = only_rejection(run(state, one)[0])
    assert rejection.reason is RejectionReason.GUARDIAN_CONSENT_MISSING and rejection.rule_id is RuleId.P3

    both = request(key=CHILD, consenting_guardian_keys=frozenset({"g1", "g2"}), guardian_count=2)
    assert types_of(run(state, both)[0]) == [ev.ListingStarted]


def test_P3_unknown_number_of_guardians_is_not_enough_when_all_must_consent() -> None:
    events, _ = run(child_state(), request(key=CHILD, consenting_guardian_keys=frozenset({"g1"})))
    assert only_rejection(events).reason is RejectionReason.GUARDIAN_CONSENT_MISSING


def test_P3_profile_may_require_only_one_guardian() -> None:
    one_enough = replace(profile_for("national", DAY), p3_all_guardians_must_consent=False)
    cmd_ = request(key=CHILD, consenting_guardian_keys=frozenset({"g1"}), guardian_count=2)
    assert types_of(decide(child_state(), cmd_, one_enough)) == [ev.ListingStarted]
    no_consent = request(key=CHILD)
    assert only_rejection(decide(child_state(), no_consent, one_enough)).rule_id is RuleId.P3


def test_P3_region_placement_of_a_child_needs_no_guardian_consent() -> None:
    placed = request(key=CHILD, initiated_by=Initiator.REGION, origin=ListingOrigin.NO_CHOICE_PLACEMENT)
    assert types_of(run(child_state(), placed)[0]) == [ev.ListingStarted]


def test_P3_adults_need_no_guardian() -> None:
    eighteen = world(person(ADULT, birth=DAY.replace(year=DAY.year - 18)))
    assert types_of(run(eighteen, request())[0]) == [ev.ListingStarted]
