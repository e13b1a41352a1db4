"""Person rules P1 (death / emigration) and P2 (protected identity: ids only)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

from listing_builders import (
    ADULT,
    CHEF_A,
    DAY,
    LIST_SPEC,
    UNIT_A,
    accepted,
    assigned,
    listed,
    only_rejection,
    person,
    run,
    types_of,
    world,
)
from services.listing.domain import commands as cmd
from services.listing.domain import events as ev
from services.listing.domain.model import (
    FlkEndReason,
    ListingEndReason,
    ListingState,
    Person,
    PopulationStatus,
)
from services.listing.domain.policy import profile_for
from services.listing.domain.privacy import check_ids_only, ids_only
from services.listing.domain.reasons import RejectionReason, RuleId
from services.listing.domain.rules import decide
from services.listing.domain.views import PatientView, missing_fast_lakarkontakt_for_alerts, patient_view

pytestmark = pytest.mark.unit

LATER = DAY + timedelta(days=100)


def cared_for(protected: bool = False) -> ListingState:
    state = listed(world(person(protected=protected)))
    state = assigned(state, LIST_SPEC)
    return accepted(
        state,
        cmd.AppointFastVardkontakt(
            patient_key=ADULT,
            care_unit_id=UNIT_A,
            practitioner_id="hsa-nurse",
            profession="sjuksköterska",
            appointed_by_hsa_id=CHEF_A,
            effective_date=DAY,
        ),
    )


# ---------------------------------------------------------------- P1


def test_P1_death_ends_listing_and_assignments_and_keeps_history() -> None:
    events, after = run(cared_for(), cmd.RecordPersonDeceased(patient_key=ADULT, effective_date=LATER))
    assert types_of(events) == [
        ev.PersonDeceased,
        ev.ListingEnded,
        ev.FastLakarkontaktEnded,
        ev.FastVardkontaktEnded,
    ]
    assert events[1].reason is ListingEndReason.DECEASED and events[2].reason is FlkEndReason.DECEASED
    record = after.patients[ADULT]
    assert record.person.population_status is PopulationStatus.DECEASED
    assert record.open_listing is None and record.open_assignments == () and record.open_fast_vardkontakter == ()
    # history kept for statistics
    assert [lst.end_reason for lst in record.listings] == [ListingEndReason.DECEASED]
    assert [a.end_reason for a in record.assignments] == [FlkEndReason.DECEASED]
    assert after.listed_count_by_unit[UNIT_A] == 0 and after.list_size_by_list[LIST_SPEC] == 0


def test_P1_emigration_ends_listing_and_assignments_with_reason_emigrated() -> None:
    events, after = run(cared_for(), cmd.RecordPersonEmigrated(patient_key=ADULT, effective_date=LATER))
    assert events[1].reason is ListingEndReason.EMIGRATED and events[2].reason is FlkEndReason.EMIGRATED
    assert after.patients[ADULT].person.population_status is PopulationStatus.EMIGRATED


def test_P1_deceased_persons_raise_no_alerts() -> None:
    state = accepted(listed(world()), cmd.RecordPersonDeceased(patient_key=ADULT, effective_date=LATER))
    policy = profile_for("vastmanland", LATER)
    assert not missing_fast_lakarkontakt_for_alerts(state.patients[ADULT], LATER - timedelta(days=1), policy)


def test_P1_nothing_new_is_started_for_a_deceased_person() -> None:
    state = accepted(listed(world()), cmd.RecordPersonDeceased(patient_key=ADULT, effective_date=LATER))
    relist = cmd.RequestListing(patient_key=ADULT, care_unit_id=UNIT_A, effective_date=LATER + timedelta(days=1))
    rejection = only_rejection(run(state, relist)[0])
    assert rejection.reason is RejectionReason.PERSON_DECEASED and rejection.rule_id is RuleId.P1
    flk = cmd.AssignFastLakarkontakt(patient_key=ADULT, list_id=LIST_SPEC, effective_date=LATER)
    assert only_rejection(run(state, flk)[0]).rule_id is RuleId.P1


def test_P1_repeated_register_messages_change_nothing() -> None:
    death = cmd.RecordPersonDeceased(patient_key=ADULT, effective_date=LATER)
    state = accepted(cared_for(), death)
    assert run(state, death)[0] == []
    assert run(state, cmd.RecordPersonEmigrated(patient_key=ADULT, effective_date=LATER))[0] == []
    assert only_rejection(run(state, cmd.RecordPersonDeceased(patient_key="x", effective_date=LATER))[0]).reason is (
        RejectionReason.PERSON_UNKNOWN
    )


# ---------------------------------------------------------------- P2

NAME_OR_ADDRESS = ("name", "namn", "address", "adress", "street", "gata", "postal", "postnummer", "phone", "email")


def test_P2_events_carry_no_name_or_address() -> None:
    for cls in ev.ALL_EVENTS + cmd.ALL_COMMANDS:
        check_ids_only(cls)  # the same check that runs at import time
        for f in dataclasses.fields(cls):
            assert not any(w in f.name.lower() for w in NAME_OR_ADDRESS), f"{cls.__name__}.{f.name}"
    assert not any(w in f.name for f in dataclasses.fields(Person) for w in NAME_OR_ADDRESS)


def test_P2_events_about_a_protected_person_hold_ids_only() -> None:
    state = cared_for(protected=True)
    relist = cmd.RequestListing(patient_key=ADULT, care_unit_id="SE2321000222-VCB", effective_date=LATER)
    events, _ = run(state, relist)
    names = {u.name for u in state.units.values()} | {lst.display_name for lst in state.lists.values()}
    for e in events:
        values = {getattr(e, f.name) for f in dataclasses.fields(e)}
        assert not values & names, e


@pytest.mark.parametrize(
    "field_decl",
    ["name: str", "home_address: str", "first_namn: str", "comment: str", "patient: str", "extra: dict"],
)
def test_P2_a_record_with_a_name_or_free_text_field_cannot_be_declared(field_decl: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"class Leaky:\n    patient_key: str\n    {field_decl}\n", namespace)  # noqa: S102 - test-only class
    with pytest.raises(TypeError, match="P2"):
        ids_only(namespace["Leaky"])  # type: ignore[arg-type]


def test_P2_rejection_messages_are_the_same_for_protected_persons_and_name_nobody() -> None:
    plain = only_rejection(run(world(person(region="07")), cmd.RequestListing(
        patient_key=ADULT, care_unit_id=UNIT_A, effective_date=DAY))[0])
    hidden = only_rejection(run(world(person(region="07", protected=True)), cmd.RequestListing(
        patient_key=ADULT, care_unit_id=UNIT_A, effective_date=DAY))[0])
    assert plain == hidden
    assert ADULT not in hidden.message_sv and ADULT not in hidden.message_en


def test_P2_patient_view_never_shows_the_persons_name() -> None:
    state = cared_for(protected=True)
    view = patient_view(state.patients[ADULT], state, DAY + timedelta(days=1))
    person_fields = [f.name for f in dataclasses.fields(PatientView) if "name" in f.name]
    assert person_fields == ["unit_display_name"]  # the unit's name; nothing about the patient
    assert view.patient_key == ADULT and view.fast_lakarkontakter[0].list_id == LIST_SPEC


def test_P2_protected_identity_is_recorded_as_a_flag() -> None:
    events, after = run(listed(world()), cmd.RecordProtectedIdentity(patient_key=ADULT, effective_date=DAY))
    assert types_of(events) == [ev.ProtectedIdentityRecorded]
    assert after.patients[ADULT].person.protected_identity
    assert run(after, cmd.RecordProtectedIdentity(patient_key=ADULT, effective_date=DAY))[0] == []


def test_sabo_residence_is_recorded_as_a_flag() -> None:
    events, after = run(world(), cmd.RecordSaboResidence(patient_key=ADULT, effective_date=date(2024, 1, 1)))
    assert types_of(events) == [ev.SaboResidenceRecorded] and after.patients[ADULT].person.sabo_resident


def test_L4_moving_out_of_the_region_ends_the_listing_unless_the_profile_keeps_it() -> None:
    moved = cmd.RecordPersonMovedOutOfRegion(patient_key=ADULT, effective_date=LATER)
    events, after = run(cared_for(), moved)
    assert types_of(events) == [
        ev.PersonMovedOutOfRegion,
        ev.ListingEnded,
        ev.FastLakarkontaktEnded,
        ev.FastVardkontaktEnded,
    ]
    assert events[1].reason is ListingEndReason.MOVED_OUT_OF_REGION
    assert events[2].reason is FlkEndReason.LISTING_ENDED
    assert after.patients[ADULT].person.population_status is PopulationStatus.MOVED_OUT_OF_REGION
    assert run(after, moved)[0] == []

    keep = dataclasses.replace(profile_for("vastmanland", LATER), l4_end_listing_when_moved_out_of_region=False)
    assert types_of(decide(cared_for(), moved, keep)) == [ev.PersonMovedOutOfRegion]
