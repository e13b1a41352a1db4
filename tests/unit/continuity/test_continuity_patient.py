"""Per-patient state: idempotence, cancellations, time order, window, scope, pruning."""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from services.continuity.domain.indices import index_set
from services.continuity.domain.patient import (
    EMPTY_STATE,
    PatientIndices,
    PatientState,
    Visit,
    advance,
    cancel_visit,
    compute_indices,
    record_visit,
    set_listing,
    visit_stamp,
)
from services.continuity.domain.settings import ContinuitySettings, Scope
from services.continuity.domain.window import in_window

pytestmark = pytest.mark.unit

SETTINGS = ContinuitySettings()
AS_OF = date(2025, 6, 30)  # window: 2023-12-30 < date <= 2025-06-30


def visit(
    visit_id: str,
    practitioner: str = "A",
    occurred_at: date | datetime = date(2025, 1, 15),
    *,
    profession: str = "läkare",
    unit: str = "U1",
    seq: int | None = None,
    contact_type: str | None = None,
) -> Visit:
    return Visit(visit_id, practitioner, profession, unit, occurred_at, seq, contact_type)


def fold(
    visits: Iterable[Visit],
    state: PatientState = EMPTY_STATE,
    as_of: date = AS_OF,
    settings: ContinuitySettings = SETTINGS,
) -> PatientState:
    for v in visits:
        state = record_visit(state, v, as_of, settings)
    return state


def practitioners(state: PatientState) -> list[str]:
    return [v.practitioner_id for v in state.visits]


# ------------------------------------------------------------------ what counts


def test_doctor_visit_counts_for_doctor_and_total() -> None:
    result = compute_indices(fold([visit("v1")]), AS_OF, SETTINGS)
    assert result.doctor.visits == 1 and result.total.visits == 1


def test_nurse_visit_counts_only_for_total_contacts() -> None:
    result = compute_indices(fold([visit("v1", "N", profession="sjuksköterska")]), AS_OF, SETTINGS)
    assert result.doctor.visits == 0 and result.total.visits == 1


def test_profession_matching_ignores_case_and_unicode_normal_form() -> None:
    decomposed = unicodedata.normalize("NFD", "Läkare ")
    result = compute_indices(fold([visit("v1", profession=decomposed)]), AS_OF, SETTINGS)
    assert result.doctor.visits == 1


def test_profession_outside_the_total_set_is_not_stored() -> None:
    settings = ContinuitySettings(total_professions=frozenset({"läkare", "sjuksköterska"}))
    state = fold([visit("v1", profession="kurator")], settings=settings)
    assert state is EMPTY_STATE


def test_uncounted_contact_type_is_not_stored() -> None:
    state = fold([visit("v1", contact_type="brev")])
    assert state is EMPTY_STATE


def test_counted_contact_types_and_missing_contact_type_count() -> None:
    visits = [visit(f"v{i}", contact_type=c) for i, c in enumerate(["besok", "Telefon", "digital", "hembesok", None])]
    assert compute_indices(fold(visits), AS_OF, SETTINGS).total.visits == 5


def test_contact_types_are_a_setting() -> None:
    settings = ContinuitySettings(contact_types=frozenset({"besok"}))
    state = fold([visit("v1", contact_type="besok"), visit("v2", contact_type="telefon")], settings=settings)
    assert compute_indices(state, AS_OF, settings).total.visits == 1


# ------------------------------------------------------------------ idempotence and cancellation


def test_duplicate_visit_id_changes_nothing() -> None:
    state = fold([visit("v1")])
    assert record_visit(state, visit("v1"), AS_OF, SETTINGS) is state


def test_duplicate_visit_id_with_other_content_keeps_the_first_version() -> None:
    state = fold([visit("v1", "A"), visit("v1", "B", date(2025, 2, 1))])
    assert practitioners(state) == ["A"]


def test_cancelled_visit_is_not_counted() -> None:
    state = fold([visit("v1", "A"), visit("v2", "B")])
    state = cancel_visit(state, "v2", AS_OF, SETTINGS)
    result = compute_indices(state, AS_OF, SETTINGS)
    assert result.doctor.visits == 1 and practitioners(state) == ["A"]


def test_cancel_before_visit_ignores_the_later_visit() -> None:
    state = cancel_visit(EMPTY_STATE, "v1", AS_OF, SETTINGS)
    assert len(state.tombstones) == 1
    assert record_visit(state, visit("v1"), AS_OF, SETTINGS) is state


def test_redelivered_visit_after_its_cancellation_stays_cancelled() -> None:
    state = cancel_visit(fold([visit("v1")]), "v1", AS_OF, SETTINGS)
    assert record_visit(state, visit("v1"), AS_OF, SETTINGS) is state
    assert state.visits == ()


def test_repeated_cancellation_changes_nothing() -> None:
    state = cancel_visit(fold([visit("v1")]), "v1", AS_OF, SETTINGS)
    assert cancel_visit(state, "v1", AS_OF, SETTINGS) is state


def test_cancellation_of_a_visit_dated_before_the_window_leaves_no_tombstone() -> None:
    state = cancel_visit(EMPTY_STATE, "v1", AS_OF, SETTINGS, occurred_at=date(2020, 1, 1))
    assert state is EMPTY_STATE


# ------------------------------------------------------------------ time order


def test_out_of_order_visits_are_placed_in_time_order() -> None:
    state = fold([visit("v3", "B", date(2025, 3, 1)), visit("v1", "A", date(2025, 1, 1)), visit("v2", "A", date(2025, 2, 1))])
    assert practitioners(state) == ["A", "A", "B"]
    assert compute_indices(state, AS_OF, SETTINGS).doctor.secon == 0.5


def test_same_date_visits_keep_arrival_order() -> None:
    day = date(2025, 2, 1)
    state = fold([visit("v1", "A", day, seq=1), visit("v2", "B", day, seq=2), visit("v3", "A", day, seq=3)])
    assert practitioners(state) == ["A", "B", "A"]


def test_same_date_visits_are_ordered_by_arrival_sequence_even_if_recorded_late() -> None:
    day = date(2025, 2, 1)
    state = fold([visit("v2", "B", day, seq=20), visit("v3", "C", day, seq=30), visit("v1", "A", day, seq=10)])
    assert practitioners(state) == ["A", "B", "C"]


def test_without_sequence_numbers_same_date_visits_keep_call_order() -> None:
    day = date(2025, 2, 1)
    state = fold([visit("v1", "B", day), visit("v0", "A", day), visit("v2", "C", day)])
    assert practitioners(state) == ["B", "A", "C"]


def test_times_order_visits_within_a_day() -> None:
    state = fold([visit("v1", "B", datetime(2025, 2, 1, 15, 0), seq=1), visit("v2", "A", datetime(2025, 2, 1, 9, 0), seq=2)])
    assert practitioners(state) == ["A", "B"]


def test_aware_date_time_is_taken_in_swedish_local_time() -> None:
    late_utc = datetime(2025, 6, 30, 22, 30, tzinfo=timezone.utc)  # 2025-07-01 00:30 in Stockholm
    assert visit_stamp(late_utc) // 86_400 == date(2025, 7, 1).toordinal()
    state = fold([visit("v1", occurred_at=late_utc)])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 0
    assert compute_indices(state, date(2025, 7, 1), SETTINGS).doctor.visits == 1


# ------------------------------------------------------------------ window


def test_visit_exactly_at_window_start_is_excluded() -> None:
    state = fold([visit("v1", occurred_at=date(2023, 12, 30))], as_of=date(2023, 12, 30))
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 0


def test_visit_the_day_after_window_start_is_included() -> None:
    state = fold([visit("v1", occurred_at=date(2023, 12, 31))])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 1


def test_visit_at_the_end_of_the_as_of_day_is_included() -> None:
    state = fold([visit("v1", occurred_at=datetime(2025, 6, 30, 23, 59, 59))])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 1


def test_window_start_clamps_to_the_end_of_the_month() -> None:
    as_of = date(2024, 8, 31)  # start 2023-02-28 (exclusive)
    state = fold([visit("v1", occurred_at=date(2023, 2, 28)), visit("v2", occurred_at=date(2023, 3, 1))], as_of=date(2023, 3, 1))
    assert compute_indices(state, as_of, SETTINGS).doctor.visits == 1


def test_future_visit_counts_only_once_as_of_reaches_it() -> None:
    state = fold([visit("v1", occurred_at=date(2025, 7, 1))])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 0
    assert compute_indices(state, date(2025, 7, 1), SETTINGS).doctor.visits == 1


def test_visit_older_than_the_window_is_not_stored() -> None:
    assert fold([visit("v1", occurred_at=date(2023, 12, 30))]) is EMPTY_STATE


def test_visits_leave_the_window_as_time_passes() -> None:
    state = fold([visit("v1", "A", date(2024, 1, 1)), visit("v2", "B", date(2025, 1, 1))])
    assert compute_indices(state, date(2025, 7, 1), SETTINGS).doctor.visits == 1
    later = advance(state, date(2025, 7, 1), SETTINGS)
    assert practitioners(later) == ["B"]


def test_zero_window_months_counts_every_visit_up_to_as_of_and_prunes_nothing() -> None:
    settings = ContinuitySettings(window_months=0)
    state = fold([visit("v1", occurred_at=date(1999, 1, 1)), visit("v2", occurred_at=date(2025, 7, 1))], settings=settings)
    assert compute_indices(state, AS_OF, settings).doctor.visits == 1
    assert advance(state, date(2100, 1, 1), settings) is state


# ------------------------------------------------------------------ pruning and bounded state


def test_advance_prunes_visits_and_tombstones_dated_at_or_before_the_window_start() -> None:
    state = fold([visit("v1", occurred_at=date(2024, 1, 1)), visit("v2", occurred_at=date(2024, 6, 1))])
    state = cancel_visit(state, "v2", AS_OF, SETTINGS)
    assert len(state.tombstones) == 1
    pruned = advance(state, date(2026, 1, 1), SETTINGS)  # window start 2024-07-01
    assert pruned.visits == () and pruned.tombstones == ()


def test_advance_with_nothing_to_prune_returns_the_same_state() -> None:
    state = fold([visit("v1")])
    assert advance(state, AS_OF, SETTINGS) is state


def test_recording_prunes_visits_that_left_the_window() -> None:
    state = fold([visit("v1", occurred_at=date(2024, 1, 1))])
    state = record_visit(state, visit("v2", occurred_at=date(2025, 9, 1)), date(2025, 9, 1), SETTINGS)
    assert [v.day for v in state.visits] == [date(2025, 9, 1)]


def test_tombstone_without_visit_date_is_dated_as_of_and_pruned_with_the_window() -> None:
    state = cancel_visit(EMPTY_STATE, "v9", AS_OF, SETTINGS)
    assert state.tombstones[0].day_number == AS_OF.toordinal()
    assert advance(state, date(2026, 12, 30), SETTINGS).tombstones == ()  # start 2025-06-30


def test_state_stays_bounded_by_the_window_over_ten_years_of_weekly_visits() -> None:
    state = EMPTY_STATE
    day = date(2015, 1, 1)
    largest = 0
    for week in range(520):
        day = date(2015, 1, 1) + timedelta(weeks=week)
        state = record_visit(state, visit(f"v{week}", "AB"[week % 2], day), day, SETTINGS)
        if week % 10 == 0:
            state = cancel_visit(state, f"v{week}", day, SETTINGS)
        largest = max(largest, len(state.visits) + len(state.tombstones))
    assert largest <= 80  # 18 months ≈ 78 weeks
    assert all(in_window(v.day, day, 18) for v in state.visits)


# ------------------------------------------------------------------ listing and scope


def test_listing_unit_scope_counts_only_visits_at_the_listing_unit() -> None:
    state = set_listing(fold([visit("v1", unit="U1"), visit("v2", unit="U2")]), "U1", ["A"])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 1


def test_visits_at_a_filial_count_at_its_main_unit_and_at_its_sister_filials() -> None:
    """Seed 004: filials F1, F2 of main unit U1; listed at U1 or at a filial, the family's visits count."""
    families = {"F1": "U1", "F2": "U1"}
    visits = [visit("v1", unit="U1"), visit("v2", unit="F1"), visit("v3", unit="F2"), visit("v4", unit="U2")]
    for listed_at in ("U1", "F1"):
        state = set_listing(fold(visits), listed_at, ["A"])
        assert compute_indices(state, AS_OF, SETTINGS, families).doctor.visits == 3
        assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 1, "without the register: the unit alone"


def test_the_unit_register_facts_make_and_unmake_filials_the_latest_fact_winning() -> None:
    from services.continuity.adapters.unit_register import apply_unit_facts

    families = apply_unit_facts({}, [{"care_unit_id": "F1", "main_unit_id": "U1"},
                                     {"care_unit_id": "F2", "main_unit_id": "U1"},
                                     {"care_unit_id": "U1", "main_unit_id": None}])
    assert families == {"F1": "U1", "F2": "U1"}
    assert apply_unit_facts(families, [{"care_unit_id": "F2", "main_unit_id": None}]) == {"F1": "U1"}


def test_unlisted_patient_counts_visits_at_all_units() -> None:
    state = fold([visit("v1", unit="U1"), visit("v2", unit="U2")])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 2


def test_scope_all_counts_visits_at_every_unit() -> None:
    settings = ContinuitySettings(scope=Scope.ALL)
    state = set_listing(fold([visit("v1", unit="U1"), visit("v2", unit="U2")], settings=settings), "U1")
    assert compute_indices(state, AS_OF, settings).doctor.visits == 2


def test_scope_accepts_its_text_value() -> None:
    assert ContinuitySettings(scope="all").scope is Scope.ALL  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ContinuitySettings(scope="region")  # type: ignore[arg-type]


def test_relisting_changes_the_counted_visits_without_replaying_them() -> None:
    state = set_listing(fold([visit("v1", unit="U1"), visit("v2", unit="U2"), visit("v3", unit="U2")]), "U1")
    assert compute_indices(state, AS_OF, SETTINGS).doctor.visits == 1
    assert compute_indices(set_listing(state, "U2"), AS_OF, SETTINGS).doctor.visits == 2


def test_set_listing_keeps_fast_lakarkontakt_sorted_and_unique_and_is_idempotent() -> None:
    state = set_listing(EMPTY_STATE, "U1", ["B", "A", "B", ""])
    assert state.fast_lakarkontakt == ("A", "B") and state.listed
    assert set_listing(state, "U1", ["A", "B"]) is state


def test_kpc_is_the_share_of_visits_with_the_patients_fast_lakarkontakt() -> None:
    state = set_listing(fold([visit("v1", "A"), visit("v2", "A"), visit("v3", "B"), visit("v4", "N", profession="ssk")]), "U1", ["A"])
    result = compute_indices(state, AS_OF, SETTINGS)
    assert result.doctor.kpc == pytest.approx(2 / 3)
    assert result.total.kpc == pytest.approx(2 / 4)


def test_kpc_is_null_for_a_patient_without_fast_lakarkontakt() -> None:
    state = set_listing(fold([visit("v1")]), "U1", [])
    assert compute_indices(state, AS_OF, SETTINGS).doctor.kpc is None


def test_eligible_needs_min_visits_in_the_counted_set() -> None:
    state = fold([visit("v1"), visit("v2"), visit("v3", "N", profession="ssk")])
    result = compute_indices(state, AS_OF, SETTINGS)
    assert result.doctor.eligible is False and result.total.eligible is True
    assert result.doctor.coc == 1.0  # reported although not eligible


def test_json_dict_has_as_of_and_both_index_sets() -> None:
    result = compute_indices(EMPTY_STATE, AS_OF, SETTINGS)
    assert isinstance(result, PatientIndices)
    empty = {"visits": 0, "coc": None, "upc": None, "secon": None, "hhi": None, "mmci": None, "kpc": None, "eligible": False}
    assert result.to_json_dict() == {"as_of": "2025-06-30", "doctor": empty, "total": empty}


# ------------------------------------------------------------------ a reference model

visit_specs = st.lists(
    st.tuples(
        st.sampled_from("ABCD"),  # practitioner
        st.sampled_from(["läkare", "sjuksköterska"]),
        st.sampled_from(["U1", "U2"]),
        st.integers(-560, 10),  # days from AS_OF: both sides of the window edges
        st.integers(0, 3),  # hour slot: many same-time ties
        st.booleans(),  # cancelled
        st.booleans(),  # delivered twice
        st.booleans(),  # cancellation carries the visit date
    ),
    max_size=25,
)


@hypothesis_settings(max_examples=200)
@given(visit_specs, st.randoms(use_true_random=False), st.sampled_from([None, "U1"]), st.sampled_from(list(Scope)))
def test_any_delivery_order_with_duplicates_and_cancellations_matches_the_reference(
    specs, rnd, listing_unit, scope
) -> None:
    settings = ContinuitySettings(scope=scope)
    visits = [
        visit(f"v{i}", p, datetime.combine(AS_OF + timedelta(days=d), datetime.min.time()) + timedelta(hours=h), profession=prof, unit=u, seq=i)
        for i, (p, prof, u, d, h, *_rest) in enumerate(specs)
    ]
    events: list[tuple[str, object]] = []
    for v, (*_head, cancelled, twice, dated) in zip(visits, specs):
        events.append(("visit", v))
        if twice:
            events.append(("visit", v))
        if cancelled:
            events.append(("cancel", (v.visit_id, v.occurred_at if dated else None)))
    rnd.shuffle(events)

    state = set_listing(EMPTY_STATE, listing_unit, ["A"])
    for kind, payload in events:
        if kind == "visit":
            state = record_visit(state, payload, AS_OF, settings)
        else:
            visit_id, occurred_at = payload
            state = cancel_visit(state, visit_id, AS_OF, settings, occurred_at=occurred_at)

    kept = sorted(
        (
            v
            for v, spec in zip(visits, specs)
            if not spec[5]
            and in_window(v.occurred_at.date(), AS_OF, settings.window_months)
            and (listing_unit is None or scope is Scope.ALL or v.care_unit_id == listing_unit)
        ),
        key=lambda v: (v.occurred_at, v.seq),
    )
    expected_doctor = index_set([v.practitioner_id for v in kept if v.profession == "läkare"], ["A"], 3)
    expected_total = index_set([v.practitioner_id for v in kept], ["A"], 3)
    result = compute_indices(state, AS_OF, settings)
    assert result.doctor == expected_doctor
    assert result.total == expected_total
