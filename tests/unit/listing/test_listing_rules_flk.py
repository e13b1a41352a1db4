"""Fast läkarkontakt rules F1–F8 and fast vårdkontakt V1, one named test (or more) per rule id."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from listing_builders import (
    ADULT,
    CHEF_A,
    CHILD,
    DAY,
    ELDER,
    LIST_B,
    LIST_FICTIVE,
    LIST_GER,
    LIST_HYR,
    LIST_KONSULT,
    LIST_NURSE,
    LIST_OTHER_SPEC,
    LIST_PED,
    LIST_SPEC,
    LIST_SPEC2,
    LIST_ST,
    LIST_UNLICENSED,
    ROLE_NURSE,
    ROLE_SPEC,
    ROLE_ST,
    UNIT_A,
    UNIT_A_NAME,
    UNIT_B,
    accepted,
    assigned,
    listed,
    only_rejection,
    person,
    role,
    run,
    types_of,
    with_role,
    world,
)
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.events import CapacityBasis
from services.listing.domain.model import (
    DoctorList,
    EmploymentType,
    FlkEndReason,
    ListingState,
    ListKind,
    is_valid_fictive_list_name,
)
from services.listing.domain.policy import profile_for
from services.listing.domain.reasons import RejectionReason, RuleId
from services.listing.domain.evolve import evolve_all
from services.listing.domain.rules import decide
from services.listing.domain.views import (
    has_named_fast_lakarkontakt,
    lacks_fast_lakarkontakt,
    missing_fast_lakarkontakt_for_alerts,
    patient_view,
)

pytestmark = pytest.mark.unit


def assign(list_id: str, key: str = ADULT, on: date = DAY, **kw: object) -> cmd.AssignFastLakarkontakt:
    return cmd.AssignFastLakarkontakt(patient_key=key, list_id=list_id, effective_date=on, **kw)


def listed_adult(profile: str = "vastmanland", *persons) -> ListingState:  # type: ignore[no-untyped-def]
    state = world(*persons) if persons else world()
    for p in state.patients.values():
        state = listed(state, key=p.patient_key, profile=profile)
    return state


def open_flk(state: ListingState, key: str = ADULT) -> dict[str, bool]:
    return {a.list_id: a.coordinating for a in state.patients[key].open_assignments}


# ---------------------------------------------------------------- F1


@pytest.mark.parametrize("profile", ["national", "vastmanland", "kronoberg", "kalmar"])
@pytest.mark.parametrize("list_id", [LIST_UNLICENSED, LIST_NURSE], ids=["unlicensed-doctor", "nurse"])
def test_F1_flk_must_be_a_legitimerad_lakare(profile: str, list_id: str) -> None:
    events, _ = run(listed_adult(profile), assign(list_id), profile)
    rejection = only_rejection(events)
    assert rejection.reason is RejectionReason.NOT_LEGITIMERAD_LAKARE and rejection.rule_id is RuleId.F1


@pytest.mark.parametrize("profile", ["national", "vastmanland", "kronoberg", "kalmar"])
def test_F1_nurse_as_flk_is_refused_as_not_a_doctor(profile: str) -> None:
    """Named by practitioner (no list exists for a nurse): the reason is F1, not F4's unknown list."""
    events, _ = run(listed_adult(profile), assign("", practitioner_id=f"hsa-{ROLE_NURSE}"), profile)
    rejection = only_rejection(events)
    assert rejection.reason is RejectionReason.NOT_LEGITIMERAD_LAKARE and rejection.rule_id is RuleId.F1


def test_F4_a_named_practitioner_unknown_to_the_roster_gets_list_unknown() -> None:
    rejection = only_rejection(run(listed_adult(), assign("", practitioner_id="SE2321000016-X999"))[0])
    assert rejection.reason is RejectionReason.LIST_UNKNOWN and rejection.rule_id is RuleId.F4


def test_F1_list_without_a_doctor_in_service_cannot_be_assigned() -> None:
    state = with_role(listed_adult(), role(ROLE_SPEC, start=DAY + timedelta(days=30)))
    assert only_rejection(run(state, assign(LIST_SPEC))[0]).reason is RejectionReason.LIST_HAS_NO_ACTIVE_DOCTOR


# ---------------------------------------------------------------- F2


@pytest.mark.parametrize("list_id", [LIST_HYR, LIST_KONSULT], ids=["hyr", "konsult"])
def test_F2_vastmanland_rejects_hired_and_consultant_doctors(list_id: str) -> None:
    rejection = only_rejection(run(listed_adult(), assign(list_id))[0])
    assert rejection.reason is RejectionReason.EMPLOYMENT_NOT_ELIGIBLE and rejection.rule_id is RuleId.F2
    assert "fiktiva lista" in rejection.message_sv


@pytest.mark.parametrize("list_id", [LIST_SPEC, LIST_ST], ids=["tillsvidare-allmanmedicin", "st-allmanmedicin"])
def test_F2_vastmanland_accepts_permanent_gp_specialists_and_st_in_allmanmedicin(list_id: str) -> None:
    events, _ = run(listed_adult(), assign(list_id))
    assert types_of(events) == [ev.FastLakarkontaktAssigned]


def test_F2_vastmanland_geriatrician_only_for_elderly_patients() -> None:
    state = listed_adult(
        "vastmanland", person(ADULT), person(ELDER, birth=date(1940, 1, 1)), person("p-sabo", sabo=True)
    )
    assert only_rejection(run(state, assign(LIST_GER))[0]).reason is RejectionReason.OUTSIDE_SPECIALTY_PATIENT_GROUP
    assert types_of(run(state, assign(LIST_GER, key=ELDER))[0]) == [ev.FastLakarkontaktAssigned]
    assert types_of(run(state, assign(LIST_GER, key="p-sabo"))[0]) == [ev.FastLakarkontaktAssigned]


def test_F2_vastmanland_paediatrician_only_for_children() -> None:
    state = listed_adult("vastmanland", person(ADULT), person(CHILD, birth=date(2016, 1, 1)))
    assert only_rejection(run(state, assign(LIST_PED))[0]).rule_id is RuleId.F2
    assert types_of(run(state, assign(LIST_PED, key=CHILD))[0]) == [ev.FastLakarkontaktAssigned]


def test_F2_vastmanland_other_specialties_are_not_eligible() -> None:
    assert only_rejection(run(listed_adult(), assign(LIST_OTHER_SPEC))[0]).reason is (
        RejectionReason.SPECIALTY_NOT_ELIGIBLE
    )


@pytest.mark.parametrize("list_id", [LIST_HYR, LIST_KONSULT, LIST_OTHER_SPEC, LIST_GER])
def test_F2_national_profile_accepts_any_legitimerad_lakare(list_id: str) -> None:
    events, _ = run(listed_adult("national"), assign(list_id), "national")
    assert types_of(events) == [ev.FastLakarkontaktAssigned]


def test_F2_the_profile_version_valid_on_the_effective_date_decides() -> None:
    before, after = date(2021, 6, 1), date(2022, 1, 10)
    state = listed(world(), on=date(2021, 5, 1))
    assert profile_for("vastmanland", before).version == 1
    assert types_of(run(state, assign(LIST_HYR, on=before))[0]) == [ev.FastLakarkontaktAssigned]
    rejection = only_rejection(run(state, assign(LIST_HYR, on=after))[0])
    assert rejection.rule_id is RuleId.F2 and rejection.decided_under == "vastmanland@2"


# ---------------------------------------------------------------- F3


def test_F3_locum_patients_go_on_the_fictive_list() -> None:
    events, state = run(listed_adult(), assign(LIST_FICTIVE))
    (assigned_,) = events
    assert assigned_.list_kind is ListKind.FICTIVE
    assert open_flk(state) == {LIST_FICTIVE: True}


def test_F3_locum_patients_count_as_lacking_flk() -> None:
    state = assigned(listed_adult(), LIST_FICTIVE)
    record = state.patients[ADULT]
    on = DAY + timedelta(days=1)
    assert not has_named_fast_lakarkontakt(record, on)
    assert lacks_fast_lakarkontakt(record, on)
    assert missing_fast_lakarkontakt_for_alerts(record, on, profile_for("vastmanland", on))


def test_F3_fictive_list_is_hidden_from_the_patient_view() -> None:
    state = assigned(listed_adult(), LIST_FICTIVE)
    view = patient_view(state.patients[ADULT], state, DAY + timedelta(days=1))
    assert view.care_unit_id == UNIT_A and view.fast_lakarkontakter == ()
    assert "Dr X" not in repr(view)


def test_F3_a_named_flk_replaces_a_fictive_placement() -> None:
    state = assigned(listed_adult(), LIST_FICTIVE)
    events, after = run(state, assign(LIST_SPEC, on=DAY + timedelta(days=10)))
    assert types_of(events) == [ev.FastLakarkontaktEnded, ev.FastLakarkontaktAssigned]
    assert events[0].reason is FlkEndReason.REPLACED
    assert open_flk(after) == {LIST_SPEC: True}


def test_F3_fictive_list_names_start_with_the_unit_name() -> None:
    state = world()
    fictive = state.lists[LIST_FICTIVE]
    assert fictive.display_name == f"{UNIT_A_NAME} Dr X"
    assert is_valid_fictive_list_name(fictive, state.units[UNIT_A])
    assert not is_valid_fictive_list_name(replace(fictive, display_name="Dr X"), state.units[UNIT_A])


def test_F3_a_profile_can_turn_fictive_lists_off() -> None:
    no_fictive = replace(profile_for("national", DAY), f3_fictive_lists_enabled=False)
    rejection = only_rejection(decide(listed_adult("national"), assign(LIST_FICTIVE), no_fictive))
    assert rejection.reason is RejectionReason.FICTIVE_LISTS_NOT_USED and rejection.rule_id is RuleId.F3


# ---------------------------------------------------------------- F4


def test_F4_flk_must_work_at_the_listing_unit() -> None:
    state = listed(world(), unit=UNIT_B)
    rejection = only_rejection(run(state, assign(LIST_SPEC))[0])
    assert rejection.reason is RejectionReason.NOT_LISTED_AT_LIST_UNIT and rejection.rule_id is RuleId.F4
    assert types_of(run(state, assign(LIST_B))[0]) == [ev.FastLakarkontaktAssigned]


def test_F4_a_person_who_is_not_listed_gets_no_flk() -> None:
    assert only_rejection(run(world(), assign(LIST_SPEC))[0]).rule_id is RuleId.F4


def test_F4_unknown_list_is_rejected() -> None:
    assert only_rejection(run(listed_adult(), assign("list-nope"))[0]).reason is RejectionReason.LIST_UNKNOWN


def test_F4_relisting_elsewhere_ends_all_flk_assignments_with_reason_relisted() -> None:
    k = "kronoberg"
    state = listed(world(), profile=k)
    state = assigned(state, LIST_SPEC, profile=k)
    state = assigned(state, LIST_SPEC2, profile=k)
    events, after = run(
        state, cmd.RequestListing(patient_key=ADULT, care_unit_id=UNIT_B, effective_date=DAY + timedelta(days=40)), k
    )
    assert types_of(events) == [ev.ListingEnded, ev.FastLakarkontaktEnded, ev.FastLakarkontaktEnded, ev.ListingStarted]
    assert {e.reason for e in events if isinstance(e, ev.FastLakarkontaktEnded)} == {FlkEndReason.RELISTED}
    assert open_flk(after) == {}
    assert after.list_size_by_list[LIST_SPEC] == 0 and after.list_size_by_list[LIST_SPEC2] == 0


# ---------------------------------------------------------------- F5


@pytest.mark.parametrize("profile", ["national", "vastmanland", "kalmar"])
def test_F5_at_most_one_flk_outside_kronoberg(profile: str) -> None:
    state = assigned(listed_adult(profile), LIST_SPEC, profile=profile)
    rejection = only_rejection(run(state, assign(LIST_SPEC2), profile)[0])
    assert rejection.reason is RejectionReason.TOO_MANY_FAST_LAKARKONTAKTER and rejection.rule_id is RuleId.F5


def test_F5_replacing_the_flk_ends_the_old_one_with_reason_replaced() -> None:
    state = assigned(listed_adult(), LIST_SPEC)
    events, after = run(state, assign(LIST_SPEC2, on=DAY + timedelta(days=3), replaces_list_id=LIST_SPEC))
    assert types_of(events) == [ev.FastLakarkontaktEnded, ev.FastLakarkontaktAssigned]
    assert events[0].reason is FlkEndReason.REPLACED
    assert open_flk(after) == {LIST_SPEC2: True}


def test_F5_kronoberg_allows_several_flk_with_exactly_one_coordinating() -> None:
    k = "kronoberg"
    state = assigned(listed_adult(k), LIST_SPEC, profile=k)
    state = assigned(state, LIST_SPEC2, profile=k)
    state = assigned(state, LIST_ST, profile=k)
    assert open_flk(state) == {LIST_SPEC: True, LIST_SPEC2: False, LIST_ST: False}


def test_F5_kronoberg_coordination_can_move_to_a_new_flk() -> None:
    k = "kronoberg"
    state = assigned(listed_adult(k), LIST_SPEC, profile=k)
    events, after = run(state, assign(LIST_SPEC2, coordinating=True), k)
    assert types_of(events) == [ev.FastLakarkontaktAssigned, ev.CoordinatingFastLakarkontaktChanged]
    assert events[1].previous_list_id == LIST_SPEC
    assert open_flk(after) == {LIST_SPEC: False, LIST_SPEC2: True}


def test_F5_kronoberg_coordination_moves_when_the_coordinating_flk_ends() -> None:
    k = "kronoberg"
    state = assigned(listed_adult(k), LIST_SPEC, profile=k)
    state = assigned(state, LIST_SPEC2, profile=k, on=DAY + timedelta(days=1))
    state = assigned(state, LIST_ST, profile=k, on=DAY + timedelta(days=2))
    end = cmd.EndFastLakarkontakt(patient_key=ADULT, list_id=LIST_SPEC, effective_date=DAY + timedelta(days=5))
    events, after = run(state, end, k)
    assert types_of(events) == [ev.FastLakarkontaktEnded, ev.CoordinatingFastLakarkontaktChanged]
    assert open_flk(after) == {LIST_SPEC2: True, LIST_ST: False}  # longest-standing takes over

    chosen = replace(end, list_id=LIST_SPEC2, new_coordinating_list_id=LIST_ST)
    assert open_flk(accepted(after, chosen, k)) == {LIST_ST: True}


def test_F5_the_same_list_twice_is_rejected() -> None:
    state = assigned(listed_adult("kronoberg"), LIST_SPEC, profile="kronoberg")
    assert only_rejection(run(state, assign(LIST_SPEC), "kronoberg")[0]).reason is RejectionReason.ALREADY_ON_LIST


def test_F5_ending_or_replacing_an_assignment_that_does_not_exist_is_rejected() -> None:
    state = listed_adult()
    end = cmd.EndFastLakarkontakt(patient_key=ADULT, list_id=LIST_SPEC, effective_date=DAY)
    assert only_rejection(run(state, end)[0]).reason is RejectionReason.NO_SUCH_ASSIGNMENT
    assert only_rejection(run(state, assign(LIST_SPEC, replaces_list_id=LIST_ST))[0]).rule_id is RuleId.F5


# ---------------------------------------------------------------- F6


def sized(state: ListingState, list_id: str, size: int) -> ListingState:
    sizes = dict(state.list_size_by_list)
    sizes[list_id] = size
    return replace(state, list_size_by_list=sizes)


def test_F6_above_1100_per_fte_warns_but_never_blocks() -> None:
    state = sized(listed_adult(), LIST_SPEC, 1100)
    events, after = run(state, assign(LIST_SPEC))
    assert types_of(events) == [ev.FastLakarkontaktAssigned, ev.CapacityWarning]
    warning = events[1]
    assert (warning.list_size, warning.capacity, warning.basis) == (1101, 1100, CapacityBasis.SPECIALIST_BENCHMARK)
    assert warning.rule_id is RuleId.F6
    assert after.list_size_by_list[LIST_SPEC] == 1101


def test_F6_at_capacity_gives_no_warning() -> None:
    events, _ = run(sized(listed_adult(), LIST_SPEC, 1099), assign(LIST_SPEC))
    assert types_of(events) == [ev.FastLakarkontaktAssigned]


def test_F6_st_capacity_is_550_per_fte() -> None:
    events, _ = run(sized(listed_adult(), LIST_ST, 550), assign(LIST_ST))
    assert (events[-1].capacity, events[-1].basis) == (550, CapacityBasis.ST_BENCHMARK)


def test_F6_individually_agreed_list_size_wins() -> None:
    st = role(ROLE_ST, employment=EmploymentType.ST_ALLMANMEDICIN, individual_capacity=300)
    state = sized(with_role(listed_adult(), st), LIST_ST, 300)
    events, _ = run(state, assign(LIST_ST))
    assert (events[-1].capacity, events[-1].basis) == (300, CapacityBasis.INDIVIDUAL)


def test_F6_a_regional_hard_cap_blocks() -> None:
    capped = replace(profile_for("national", DAY), f6_hard_cap_per_fte=1500)
    state = sized(listed_adult("national"), LIST_SPEC, 1500)
    rejection = only_rejection(decide(state, assign(LIST_SPEC), capped))
    assert rejection.reason is RejectionReason.CAPACITY_HARD_CAP and rejection.rule_id is RuleId.F6
    events = decide(sized(state, LIST_SPEC, 1499), assign(LIST_SPEC), capped)
    assert types_of(events) == [ev.FastLakarkontaktAssigned, ev.CapacityWarning]


# ---------------------------------------------------------------- F7


def decline(on: date = DAY + timedelta(days=5)) -> cmd.DeclineFastLakarkontakt:
    return cmd.DeclineFastLakarkontakt(patient_key=ADULT, effective_date=on)


def test_F7_declining_ends_the_flk_and_keeps_the_listing() -> None:
    state = assigned(listed_adult(), LIST_SPEC)
    events, after = run(state, decline())
    assert types_of(events) == [ev.FastLakarkontaktEnded, ev.FastLakarkontaktDeclined]
    assert events[0].reason is FlkEndReason.DECLINED
    assert after.patients[ADULT].open_listing is not None and open_flk(after) == {}


def test_F7_declined_patients_are_not_missing_for_alerts_but_lack_flk_in_kpis() -> None:
    state = accepted(listed_adult(), decline())
    record, on = state.patients[ADULT], DAY + timedelta(days=6)
    policy = profile_for("vastmanland", on)
    assert lacks_fast_lakarkontakt(record, on)
    assert not missing_fast_lakarkontakt_for_alerts(record, on, policy)
    assert missing_fast_lakarkontakt_for_alerts(record, on, replace(policy, f7_declined_suppresses_alerts=False))
    assert patient_view(record, state, on).declined_fast_lakarkontakt


def test_F7_the_decline_event_carries_the_profiles_choice_whether_it_suppresses_alerts() -> None:
    """One setting, not two: the notifier follows what the region's listing profile decided."""
    state = assigned(listed_adult(), LIST_SPEC)
    policy = profile_for("vastmanland", DAY + timedelta(days=5))
    for suppresses in (True, False):
        events = decide(state, decline(), replace(policy, f7_declined_suppresses_alerts=suppresses))
        [declined] = [e for e in events if isinstance(e, ev.FastLakarkontaktDeclined)]
        assert declined.suppresses_alerts is suppresses


def test_F7_declining_twice_is_rejected_and_a_new_flk_withdraws_the_decline() -> None:
    state = accepted(listed_adult(), decline())
    rejection = only_rejection(run(state, decline(DAY + timedelta(days=6)))[0])
    assert rejection.reason is RejectionReason.ALREADY_DECLINED and rejection.rule_id is RuleId.F7
    after = assigned(state, LIST_SPEC, on=DAY + timedelta(days=9))
    assert after.patients[ADULT].open_declines == ()


# ---------------------------------------------------------------- F8


def role_ended(role_id: str = ROLE_SPEC, on: date = DAY + timedelta(days=60)) -> cmd.RecordPractitionerRoleEnded:
    return cmd.RecordPractitionerRoleEnded(role_id=role_id, effective_date=on)


def two_patients_of_spec() -> ListingState:
    state = listed_adult("vastmanland", person(ADULT), person("p-two"))
    state = assigned(state, LIST_SPEC)
    return assigned(state, LIST_SPEC, key="p-two")


def test_F8_doctor_leaving_ends_assignments_but_keeps_listings() -> None:
    state = two_patients_of_spec()
    events, after = run(state, role_ended())
    assert types_of(events) == [ev.PractitionerRoleEnded, ev.FastLakarkontaktEnded, ev.FastLakarkontaktEnded]
    assert {e.reason for e in events[1:]} == {FlkEndReason.DOCTOR_LEFT}
    for key in (ADULT, "p-two"):
        assert after.patients[key].open_listing is not None
        assert after.patients[key].open_assignments == ()
    assert LIST_SPEC in after.lists  # the list outlives its doctor
    assert after.listed_count_by_unit[UNIT_A] == 2


def test_F8_doctor_leaving_is_not_a_patient_switch() -> None:
    state = two_patients_of_spec()
    events, after = run(state, role_ended())
    assert not [e for e in events if isinstance(e, ev.ListingStarted | ev.ListingEnded)]
    assert after.patients[ADULT].changes == state.patients[ADULT].changes == ()


def test_F8_patients_become_missing_flk_and_the_vacant_list_takes_no_new_patients() -> None:
    state = accepted(two_patients_of_spec(), role_ended())
    on = DAY + timedelta(days=61)
    assert missing_fast_lakarkontakt_for_alerts(state.patients[ADULT], on, profile_for("vastmanland", on))
    rejection = only_rejection(run(state, assign(LIST_SPEC, on=on))[0])
    assert rejection.reason is RejectionReason.LIST_HAS_NO_ACTIVE_DOCTOR
    # a successor takes over the list: the list is rebound (reference data), assignments work again
    successor = role("role-successor", start=on)
    lists_ = dict(state.lists)
    lists_[LIST_SPEC] = DoctorList(LIST_SPEC, UNIT_A, "Dr efterträdare", ListKind.DOCTOR, successor.role_id)
    state = replace(with_role(state, successor), lists=lists_)
    assert types_of(run(state, assign(LIST_SPEC, on=on))[0]) == [ev.FastLakarkontaktAssigned]


def test_F8_kronoberg_coordination_moves_to_a_remaining_flk() -> None:
    k = "kronoberg"
    state = assigned(listed_adult(k), LIST_SPEC, profile=k)
    state = assigned(state, LIST_SPEC2, profile=k)
    events, after = run(state, role_ended(), k)
    assert ev.CoordinatingFastLakarkontaktChanged in types_of(events)
    assert open_flk(after) == {LIST_SPEC2: True}


def test_F8_is_idempotent_and_rejects_unknown_roles() -> None:
    state = accepted(two_patients_of_spec(), role_ended())
    assert run(state, role_ended(on=DAY + timedelta(days=70)))[0] == []
    rejection = only_rejection(run(state, role_ended("role-nope"))[0])
    assert rejection.reason is RejectionReason.ROLE_UNKNOWN and rejection.rule_id is RuleId.F8


def test_F8_ending_assignments_is_a_profile_setting() -> None:
    keep = replace(profile_for("vastmanland", DAY), f8_end_assignments_when_role_ends=False)
    events = decide(two_patients_of_spec(), role_ended(), keep)
    assert types_of(events) == [ev.PractitionerRoleEnded]


def test_F8_a_backdated_flk_with_a_doctor_who_has_since_left_ends_when_the_role_did() -> None:
    # the roster's departure (DAY + 60) was handled before an FLK assignment dated DAY reached the service
    state = accepted(listed_adult(), role_ended())
    events, after = run(state, assign(LIST_SPEC, on=DAY))
    assert types_of(events) == [ev.FastLakarkontaktAssigned, ev.FastLakarkontaktEnded]
    assert events[0].assigned_on == DAY + timedelta(days=1)  # L6: the listing's responsibility starts then
    assert (events[1].ended_on, events[1].reason) == (DAY + timedelta(days=60), FlkEndReason.DOCTOR_LEFT)
    assert open_flk(after) == {}
    assert after.list_size_by_list.get(LIST_SPEC, 0) == 0


@pytest.mark.parametrize("profile", ["vastmanland", "kronoberg"])
def test_F8_the_register_is_the_same_whichever_of_a_departure_and_a_backdated_flk_is_handled_first(
    profile: str,
) -> None:
    base = listed_adult(profile)
    if profile == "kronoberg":  # a second FLK: coordination has to come back to it
        base = assigned(base, LIST_SPEC2, profile=profile)
    flk = assign(LIST_SPEC, on=DAY + timedelta(days=5), coordinating=True)
    departure_first = accepted(accepted(base, role_ended(), profile), flk, profile)
    flk_first = accepted(accepted(base, flk, profile), role_ended(), profile)
    assert departure_first.patients[ADULT].assignments == flk_first.patients[ADULT].assignments
    assert departure_first.list_size_by_list == flk_first.list_size_by_list
    assert all(a.list_id != LIST_SPEC for a in departure_first.patients[ADULT].open_assignments)


@pytest.mark.parametrize("end_assignments", [True, False], ids=["profile-ends-flks", "profile-keeps-flks"])
def test_F8_a_backdated_flk_is_refused_when_the_doctor_left_before_it_would_begin(end_assignments: bool) -> None:
    policy = replace(profile_for("vastmanland", DAY), f8_end_assignments_when_role_ends=end_assignments)
    state = evolve_all(listed_adult(), decide(listed_adult(), role_ended(on=DAY + timedelta(days=1)), policy))
    # active on the command's date, gone on the day the listing's responsibility (and the FLK) starts
    rejection = only_rejection(decide(state, assign(LIST_SPEC, on=DAY), policy))
    assert rejection.reason is RejectionReason.LIST_HAS_NO_ACTIVE_DOCTOR


def test_F8_a_backdated_flk_stays_open_where_the_profile_keeps_assignments_of_a_departed_doctor() -> None:
    keep = replace(profile_for("vastmanland", DAY), f8_end_assignments_when_role_ends=False)
    state = evolve_all(listed_adult(), decide(listed_adult(), role_ended(), keep))
    assert types_of(decide(state, assign(LIST_SPEC, on=DAY), keep)) == [ev.FastLakarkontaktAssigned]


# ---------------------------------------------------------------- V1


def appoint(
    practitioner: str = "hsa-nurse-1", by: str = CHEF_A, profession: str = "sjuksköterska"
) -> cmd.AppointFastVardkontakt:
    return cmd.AppointFastVardkontakt(
        patient_key=ADULT,
        care_unit_id=UNIT_A,
        practitioner_id=practitioner,
        profession=profession,
        appointed_by_hsa_id=by,
        effective_date=DAY,
    )


def test_V1_verksamhetschef_appoints_a_fast_vardkontakt_of_any_profession() -> None:
    events, after = run(listed_adult(), appoint(profession="fysioterapeut"))
    assert types_of(events) == [ev.FastVardkontaktAppointed]
    assert after.patients[ADULT].open_fast_vardkontakter[0].profession == "fysioterapeut"


def test_V1_appointment_by_someone_else_is_rejected() -> None:
    rejection = only_rejection(run(listed_adult(), appoint(by="hsa-someone"))[0])
    assert rejection.reason is RejectionReason.NOT_APPOINTED_BY_VERKSAMHETSCHEF and rejection.rule_id is RuleId.V1


def test_V1_a_patient_may_have_several_fast_vardkontakter() -> None:
    state = accepted(listed_adult(), appoint("hsa-nurse-1"))
    state = accepted(state, appoint("hsa-arbetsterapeut", profession="arbetsterapeut"))
    assert len(state.patients[ADULT].open_fast_vardkontakter) == 2
    assert only_rejection(run(state, appoint("hsa-nurse-1"))[0]).reason is (
        RejectionReason.FAST_VARDKONTAKT_ALREADY_APPOINTED
    )


def test_V1_a_patient_request_creates_a_task_that_an_appointment_fulfils() -> None:
    request = cmd.RequestFastVardkontakt(patient_key=ADULT, care_unit_id=UNIT_A, effective_date=DAY)
    events, state = run(listed_adult(), request)
    assert types_of(events) == [ev.FastVardkontaktRequested]
    assert state.patients[ADULT].fast_vardkontakt_requests[0].fulfilled_on is None
    state = accepted(state, appoint())
    assert state.patients[ADULT].fast_vardkontakt_requests[0].fulfilled_on == DAY


def test_V1_ending_a_fast_vardkontakt() -> None:
    state = accepted(listed_adult(), appoint())
    end = cmd.EndFastVardkontakt(
        patient_key=ADULT, care_unit_id=UNIT_A, practitioner_id="hsa-nurse-1", effective_date=DAY + timedelta(days=3)
    )
    events, after = run(state, end)
    assert types_of(events) == [ev.FastVardkontaktEnded] and after.patients[ADULT].open_fast_vardkontakter == ()
    assert only_rejection(run(after, end)[0]).reason is RejectionReason.NO_SUCH_FAST_VARDKONTAKT


def test_V1_fast_vardkontakt_is_kept_when_the_patient_relists() -> None:
    state = accepted(listed_adult(), appoint())
    relist = cmd.RequestListing(patient_key=ADULT, care_unit_id=UNIT_B, effective_date=DAY + timedelta(days=2))
    after = accepted(state, relist)
    assert len(after.patients[ADULT].open_fast_vardkontakter) == 1


def test_F4_a_doctor_list_bound_to_a_role_at_another_unit_is_rejected() -> None:
    state = with_role(listed_adult(), role(ROLE_SPEC, unit=UNIT_B))
    assert only_rejection(run(state, assign(LIST_SPEC))[0]).reason is RejectionReason.NOT_LISTED_AT_LIST_UNIT


def test_F1_profession_title_is_compared_case_insensitively() -> None:
    state = with_role(listed_adult(), role(ROLE_SPEC, profession=" Läkare "))
    assert types_of(run(state, assign(LIST_SPEC))[0]) == [ev.FastLakarkontaktAssigned]


def test_F4_an_flk_assigned_on_the_day_of_relisting_starts_with_the_units_responsibility():
    """Listed at A with an FLK, relisted at B and back at A on one day: the first FLK ran until A's
    responsibility ended (the next day, L6), so the new one on the same list starts then — not on the
    command's day, which would give two overlapping assignments on one list."""
    state = assigned(listed(world()), LIST_SPEC)
    state = listed(state, unit=UNIT_B)
    state = listed(state, unit=UNIT_A)
    responsibility_from = DAY + timedelta(days=1)

    events, state = run(state, cmd.AssignFastLakarkontakt(patient_key=ADULT, list_id=LIST_SPEC, effective_date=DAY))

    assert [e.assigned_on for e in events if isinstance(e, ev.FastLakarkontaktAssigned)] == [responsibility_from]
    periods = [(a.period.start, a.period.end) for a in state.patients[ADULT].assignments if a.list_id == LIST_SPEC]
    assert periods[-1] == (responsibility_from, None)
    assert all(end is not None and end <= responsibility_from for _, end in periods[:-1]), periods


# ---- Kronoberg (seed 003): several FLKs, also where the patient's main contact is -------------------

KRONOBERG = "kronoberg"
LATER = DAY + timedelta(days=10)


def _open(state: ListingState, key: str = ADULT) -> dict[str, tuple[str, bool]]:
    return {a.list_id: (a.care_unit_id, a.coordinating) for a in state.patients[key].open_assignments}


def test_F4_kronoberg_an_flk_may_work_at_another_unit_where_the_patient_has_their_main_contact():
    state = listed(world(), profile=KRONOBERG)

    state = assigned(state, LIST_B, on=LATER, profile=KRONOBERG)  # the doctor's role is at unit B

    assert _open(state) == {LIST_B: (UNIT_B, True)}, "the first FLK is coordinating, wherever it works"


def test_F4_outside_kronoberg_an_flk_at_another_unit_than_the_listing_unit_is_refused():
    state = listed(world(), profile="national")
    events, _ = run(state, cmd.AssignFastLakarkontakt(patient_key=ADULT, list_id=LIST_B, effective_date=LATER),
                    "national")
    assert only_rejection(events).reason is RejectionReason.NOT_LISTED_AT_LIST_UNIT


def test_F5_kronoberg_an_flk_at_the_listing_unit_takes_coordination_from_one_elsewhere():
    state = assigned(listed(world(), profile=KRONOBERG), LIST_B, on=LATER, profile=KRONOBERG)

    events, state = run(state, cmd.AssignFastLakarkontakt(patient_key=ADULT, list_id=LIST_SPEC, effective_date=LATER),
                        KRONOBERG)

    assert ev.CoordinatingFastLakarkontaktChanged in types_of(events)
    assert _open(state) == {LIST_B: (UNIT_B, False), LIST_SPEC: (UNIT_A, True)}


def test_F5_kronoberg_the_coordinating_flk_may_not_move_away_from_the_listing_unit():
    state = assigned(listed(world(), profile=KRONOBERG), LIST_SPEC, on=LATER, profile=KRONOBERG)

    events, _ = run(state, cmd.AssignFastLakarkontakt(patient_key=ADULT, list_id=LIST_B, effective_date=LATER,
                                                      coordinating=True), KRONOBERG)

    assert only_rejection(events).reason is RejectionReason.COORDINATING_FLK_NOT_AT_LISTING_UNIT
    assert only_rejection(events).reason.rule_id is RuleId.F5


def test_F4_kronoberg_relisting_ends_the_flks_at_the_old_unit_and_keeps_the_others():
    state = assigned(listed(world(), profile=KRONOBERG), LIST_SPEC, on=LATER, profile=KRONOBERG)
    state = assigned(state, LIST_B, on=LATER, profile=KRONOBERG)
    moving = LATER + timedelta(days=30)

    events, state = run(state, cmd.RequestListing(patient_key=ADULT, care_unit_id=UNIT_B, effective_date=moving),
                        KRONOBERG)

    ended = [e.list_id for e in events if isinstance(e, ev.FastLakarkontaktEnded)]
    assert ended == [LIST_SPEC]
    assert _open(state) == {LIST_B: (UNIT_B, True)}, "the FLK at the new listing unit stays and coordinates"
