"""Read-side predicates, the patient view, care gaps and F6 capacity arithmetic."""

from __future__ import annotations

from decimal import Decimal
from datetime import timedelta

import pytest

from listing_builders import (
    ADULT,
    CHEF_A,
    DAY,
    LIST_FICTIVE,
    LIST_SPEC,
    ROLE_SPEC,
    ROLE_ST,
    UNIT_A,
    accepted,
    assigned,
    listed,
    person,
    role,
    world,
)
from services.listing.domain import commands as cmd
from services.listing.domain.capacity import assess, capacity_for
from services.listing.domain.events import CapacityBasis
from services.listing.domain.model import EmploymentType
from services.listing.domain.policy import profile_for
from services.listing.domain.views import (
    GAP_FAST_LAKARKONTAKT,
    GAP_FAST_VARDKONTAKT,
    care_gaps,
    has_named_fast_lakarkontakt,
    listed_unit_on,
    patient_view,
)

pytestmark = pytest.mark.unit

NEXT = DAY + timedelta(days=1)


def test_L6_person_is_listed_for_kpis_from_the_day_responsibility_starts() -> None:
    record = listed(world()).patients[ADULT]
    assert listed_unit_on(record, DAY) is None and listed_unit_on(record, NEXT) == UNIT_A


def test_patient_view_shows_the_named_flk_with_its_list_name() -> None:
    state = assigned(listed(world()), LIST_SPEC)
    view = patient_view(state.patients[ADULT], state, NEXT)
    (flk,) = view.fast_lakarkontakter
    assert (flk.list_id, flk.list_display_name, flk.practitioner_id, flk.coordinating) == (
        LIST_SPEC,
        f"Dr {ROLE_SPEC}",
        f"hsa-{ROLE_SPEC}",
        True,
    )
    assert has_named_fast_lakarkontakt(state.patients[ADULT], NEXT)


def test_kalmar_rub_high_need_patient_needs_both_flk_and_fast_vardkontakt() -> None:
    state = listed(world(), profile="kalmar")
    record = state.patients[ADULT]
    kalmar, national = profile_for("kalmar", NEXT), profile_for("national", NEXT)
    assert care_gaps(record, NEXT, kalmar, rub_band=5) == {GAP_FAST_LAKARKONTAKT, GAP_FAST_VARDKONTAKT}
    assert care_gaps(record, NEXT, national, rub_band=5) == {GAP_FAST_LAKARKONTAKT}
    assert care_gaps(record, NEXT, kalmar, rub_band=2) == frozenset()

    state = assigned(state, LIST_SPEC, profile="kalmar")
    state = accepted(
        state,
        cmd.AppointFastVardkontakt(
            patient_key=ADULT,
            care_unit_id=UNIT_A,
            practitioner_id="hsa-ssk",
            profession="sjuksköterska",
            appointed_by_hsa_id=CHEF_A,
            effective_date=DAY,
        ),
        "kalmar",
    )
    assert care_gaps(state.patients[ADULT], NEXT, kalmar, rub_band=5) == frozenset()


def test_F3_sabo_resident_on_a_fictive_list_is_a_care_gap() -> None:
    state = assigned(listed(world(person(sabo=True))), LIST_FICTIVE)
    assert care_gaps(state.patients[ADULT], NEXT, profile_for("vastmanland", NEXT)) == {GAP_FAST_LAKARKONTAKT}


@pytest.mark.parametrize(
    ("employment", "fte", "expected", "basis"),
    [
        (EmploymentType.TILLSVIDARE, "1.0", 1100, CapacityBasis.SPECIALIST_BENCHMARK),
        (EmploymentType.TILLSVIDARE, "0.8", 880, CapacityBasis.SPECIALIST_BENCHMARK),
        (EmploymentType.TILLSVIDARE, "0.333", 366, CapacityBasis.SPECIALIST_BENCHMARK),
        (EmploymentType.ST_ALLMANMEDICIN, "1.0", 550, CapacityBasis.ST_BENCHMARK),
        (EmploymentType.ST_ALLMANMEDICIN, "0.5", 275, CapacityBasis.ST_BENCHMARK),
    ],
)
def test_F6_capacity_is_1100_or_550_times_fte(
    employment: EmploymentType, fte: str, expected: int, basis: CapacityBasis
) -> None:
    capacity = capacity_for(role(ROLE_ST, employment=employment, fte=fte), profile_for("national", DAY))
    assert (capacity.patients, capacity.basis) == (expected, basis)


def test_F6_assessment_reports_load_and_never_a_hard_cap_nationally() -> None:
    a = assess(1650, role(ROLE_SPEC), profile_for("national", DAY))
    assert a.above_capacity and not a.above_hard_cap and a.load == Decimal("1.5")
    assert assess(10, role(ROLE_SPEC, individual_capacity=0), profile_for("national", DAY)).load is None
