"""What a population-register fact changes in a person's row (adapters/reference.py): one pure rule,
used by the fact-by-fact upsert and by the chunks' planned writes alike."""
from __future__ import annotations

from datetime import date

from services.listing.adapters.reference import new_person, person_changes

ROW = {"population_status": "folkbokford", "status_date": None, "home_region": "19",
       "birth_date": date(1950, 1, 1), "guardian_keys": None}


def changes(row=ROW, **fact):
    given = {"population_status": "folkbokford", "home_region": None, "birth_date": None, "status_date": None,
             "guardian_keys": None, **fact}
    return person_changes(row, **given)


def test_a_new_person_gets_region_00_when_the_register_names_none_and_sorted_distinct_guardians():
    row = new_person("folkbokford", None, date(2015, 3, 1), None, ["pk1_b", "pk1_a", "pk1_b"])

    assert row == {"population_status": "folkbokford", "status_date": None, "home_region": "00",
                   "birth_date": date(2015, 3, 1), "guardian_keys": ["pk1_a", "pk1_b"]}


def test_a_fact_that_states_what_the_register_holds_changes_nothing():
    assert changes(home_region="19", birth_date=date(1950, 1, 1)) == {}


def test_a_fact_that_leaves_a_field_out_keeps_it():
    assert changes(home_region=None, birth_date=None, guardian_keys=None) == {}


def test_a_new_region_birth_date_and_guardianship_are_changes():
    assert changes(home_region="20", birth_date=date(1951, 2, 2), guardian_keys=[]) == {
        "home_region": "20", "birth_date": date(1951, 2, 2), "guardian_keys": []}


def test_guardians_in_another_order_are_not_a_change():
    row = {**ROW, "guardian_keys": ["pk1_b", "pk1_a"]}

    assert changes(row, guardian_keys=["pk1_a", "pk1_b"]) == {}


def test_death_emigration_and_moving_out_are_not_written_here_they_go_through_decide():
    for status in ("deceased", "emigrated", "moved_out_of_region"):
        assert changes(population_status=status, status_date=date(2026, 1, 1)) == {}


def test_moving_back_in_sets_the_status_and_its_date():
    row = {**ROW, "population_status": "emigrated", "status_date": date(2025, 1, 1)}

    assert changes(row, population_status="folkbokford", status_date=None) == {
        "population_status": "folkbokford", "status_date": None}
