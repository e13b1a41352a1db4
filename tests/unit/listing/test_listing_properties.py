"""decide/evolve round-trip properties over random command sequences (hypothesis).

Commands are drawn step by step from the current state (``st.data()``), so that most of them
are about things that exist — a list at the unit the person is listed at, an FLK the person
has — and the accepted paths are exercised, not only the rejections.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listing_builders import (
    ADULT,
    CHEF_A,
    CHILD,
    ELDER,
    UNIT_A,
    UNIT_B,
    UNIT_CLOSED,
    lists,
    person,
    roles,
    world,
)
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.evolve import evolve_all
from services.listing.domain.model import (
    EmploymentType,
    ExemptionReason,
    Initiator,
    ListingOrigin,
    ListingState,
    ListKind,
    PopulationStatus,
)
from services.listing.domain.policy import PolicyProfile, profile_for
from services.listing.domain.rules import change_counts_toward_limit, counted_changes_in_window, decide

pytestmark = pytest.mark.unit

KEYS = [ADULT, CHILD, ELDER, "p-far"]
ALL_LISTS = [lst.list_id for lst in lists()]
ROLE_IDS = [r.role_id for r in roles()]
START = date(2021, 6, 1)  # Västmanland changes profile version on 2021-09-21 in many runs
PROFILE_NAMES = ["national", "vastmanland", "kronoberg", "kalmar"]


def weighted(*options: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Pick a strategy with the given weights (one_of picks its branches evenly)."""
    table = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def rarely(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return weighted((3, st.none()), (1, strategy))


def initial_state() -> ListingState:
    return world(
        person(ADULT),
        person(CHILD, birth=date(2014, 2, 1)),
        person(ELDER, birth=date(1938, 7, 7), sabo=True),
        person("p-far", region="07"),
    )


def command_for(state: ListingState, key: str, on: date) -> st.SearchStrategy:
    record = state.patients[key]
    listing = record.open_listing
    here = [lst.list_id for lst in state.lists.values() if listing and lst.care_unit_id == listing.care_unit_id]
    mine = [a.list_id for a in record.open_assignments]
    lists_ = st.sampled_from(here) if here else st.sampled_from(ALL_LISTS)
    some_list = weighted((4, lists_), (1, st.sampled_from(ALL_LISTS + ["list-nope"])))
    my_list = st.sampled_from(mine) if mine else some_list
    my_roles = [r for a in mine if (r := state.lists[a].role_id) is not None]
    my_role = weighted((3, st.sampled_from(my_roles or ROLE_IDS)), (1, st.sampled_from(ROLE_IDS)))
    request = st.builds(
        cmd.RequestListing,
        patient_key=st.just(key),
        care_unit_id=st.sampled_from([UNIT_A, UNIT_A, UNIT_B, UNIT_B, UNIT_CLOSED, "SE-NOPE"]),
        effective_date=st.just(on),
        initiated_by=st.sampled_from(Initiator),
        origin=st.sampled_from(ListingOrigin),
        exemption_reason=rarely(st.sampled_from(ExemptionReason)),
        residency_exception=rarely(st.just("other_region_choice")),
        consenting_guardian_keys=st.sampled_from([frozenset(), frozenset({"g1"}), frozenset({"g1", "g2"})]),
        guardian_count=st.none() | st.integers(1, 2),
    )
    assign = st.builds(
        cmd.AssignFastLakarkontakt,
        patient_key=st.just(key),
        list_id=some_list,
        effective_date=st.just(on),
        coordinating=st.booleans(),
        replaces_list_id=rarely(my_list),
    )
    end_flk = st.builds(
        cmd.EndFastLakarkontakt,
        patient_key=st.just(key),
        list_id=my_list,
        effective_date=st.just(on),
        new_coordinating_list_id=rarely(my_list),
    )
    appoint = st.builds(
        cmd.AppointFastVardkontakt,
        patient_key=st.just(key),
        care_unit_id=st.just(UNIT_A),
        practitioner_id=st.sampled_from(["hsa-ssk-1", "hsa-ssk-2"]),
        profession=st.just("sjuksköterska"),
        appointed_by_hsa_id=st.sampled_from([CHEF_A, CHEF_A, "hsa-other"]),
        effective_date=st.just(on),
    )
    listed_now = listing is not None
    return weighted(
        (4 if listed_now else 12, request),
        (14 if listed_now else 2, assign),
        (4 if mine else 1, end_flk),
        (1, st.just(cmd.EndListing(patient_key=key, effective_date=on))),
        (1, st.just(cmd.DeclineFastLakarkontakt(patient_key=key, effective_date=on))),
        (2, appoint),
        (1, st.builds(cmd.RecordPractitionerRoleEnded, role_id=my_role, effective_date=st.just(on))),
        (1, st.builds(cmd.RecordSaboResidence, patient_key=st.just(key), effective_date=st.just(on),
                      resident=st.booleans())),
        # population-register events are rare, or every run ends with everybody deceased
        (2, weighted(
            (3, st.just(cmd.RecordSaboResidence(patient_key=key, effective_date=on, resident=True))),
            (1, st.just(cmd.RecordPersonDeceased(patient_key=key, effective_date=on))),
            (1, st.just(cmd.RecordPersonEmigrated(patient_key=key, effective_date=on))),
            (1, st.just(cmd.RecordPersonMovedOutOfRegion(patient_key=key, effective_date=on))),
        )),
    )


def check_invariants(state: ListingState, policy: PolicyProfile) -> None:
    listed_counts: dict[str, int] = {}
    list_sizes: dict[str, int] = {}
    for key, record in state.patients.items():
        open_listings = [lst for lst in record.listings if lst.period.is_open]
        assert len(open_listings) <= 1, key  # L1
        open_flk = record.open_assignments
        if policy.f5_max_fast_lakarkontakter is not None:
            assert len(open_flk) <= policy.f5_max_fast_lakarkontakter, key  # F5
        if open_flk:
            assert sum(a.coordinating for a in open_flk) == 1, key  # F5: exactly one coordinating
            if not policy.f4_flk_outside_listing_unit:
                assert open_listings and {a.care_unit_id for a in open_flk} == {open_listings[0].care_unit_id}  # F4
            elif open_listings:  # Kronoberg: primary care first — coordinating at the listing unit if any is there
                here = open_listings[0].care_unit_id
                named_here = [a for a in open_flk if a.care_unit_id == here and a.list_kind is ListKind.DOCTOR]
                coordinating = next(a for a in open_flk if a.coordinating)
                assert not named_here or coordinating.care_unit_id == here, key
        assert len({a.list_id for a in open_flk}) == len(open_flk)
        # (a person who moved out may be listed again through an L4 exception group, so only P1 here)
        if record.person.population_status in (PopulationStatus.DECEASED, PopulationStatus.EMIGRATED):
            assert not open_listings and not open_flk and not record.open_fast_vardkontakter  # P1
        for lst in open_listings:
            listed_counts[lst.care_unit_id] = listed_counts.get(lst.care_unit_id, 0) + 1
        for a in open_flk:
            list_sizes[a.list_id] = list_sizes.get(a.list_id, 0) + 1
    assert {k: v for k, v in state.listed_count_by_unit.items() if v} == listed_counts
    assert {k: v for k, v in state.list_size_by_list.items() if v} == list_sizes


def check_step(state: ListingState, command: cmd.Command, policy: PolicyProfile, events: list) -> None:
    assert decide(state, command, policy) == events  # deterministic
    if any(isinstance(e, ev.REJECTIONS) for e in events):
        assert len(events) == 1
        assert evolve_all(state, events) == state  # a rejection changes nothing
    for e in events:
        if isinstance(e, ev.FastLakarkontaktAssigned) and e.list_kind is ListKind.DOCTOR:
            list_role = state.roles[state.lists[e.list_id].role_id]
            assert list_role.legitimerad  # F1
            assert list_role.employment_type in policy.f2_allowed_employment_types  # F2
        if isinstance(e, ev.ListingStarted) and e.counts_toward_switch_limit and policy.l5_enforced:
            prior = state.patients[e.patient_key].changes
            assert counted_changes_in_window(prior, e.started_on, policy) < policy.l5_max_person_initiated_changes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from(PROFILE_NAMES), data=st.data())
def test_L1_F1_F2_F4_F5_P1_invariants_hold_after_any_sequence_of_commands(profile: str, data: st.DataObject) -> None:
    state, on = initial_state(), START
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        on += timedelta(days=data.draw(st.integers(0, 40), label="gap"))
        key = data.draw(st.sampled_from([ADULT, ADULT, CHILD, ELDER, ELDER, "p-far"]), label="key")
        command = data.draw(command_for(state, key, on), label="command")
        policy = profile_for(profile, on)
        events = decide(state, command, policy)
        check_step(state, command, policy, events)
        state = evolve_all(state, events)
        check_invariants(state, policy)


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([UNIT_A, UNIT_B]),
            st.sampled_from(Initiator),
            st.sampled_from(ListingOrigin),
            rarely(st.sampled_from(ExemptionReason)),
            st.integers(0, 120),
        ),
        max_size=25,
    )
)
def test_L5_no_rolling_12_month_window_ever_holds_more_than_two_counted_changes(steps: list) -> None:
    state, on = initial_state(), START
    for unit, initiated_by, origin, exemption, gap in steps:
        on += timedelta(days=gap)
        request = cmd.RequestListing(
            patient_key=ADULT,
            care_unit_id=unit,
            effective_date=on,
            initiated_by=initiated_by,
            origin=origin,
            exemption_reason=exemption,
        )
        state = evolve_all(state, decide(state, request, profile_for("national", on)))
    policy = profile_for("national", on)
    changes = state.patients[ADULT].changes
    for change in changes:
        if change_counts_toward_limit(change.initiated_by, change.origin, change.exemption_reason, policy):
            assert counted_changes_in_window(changes, change.on, policy) <= policy.l5_max_person_initiated_changes


def test_property_universe_contains_hired_doctors() -> None:
    # guards the F2 assertion above against a universe where it could never fire
    assert any(r.employment_type is EmploymentType.HYR for r in roles())
