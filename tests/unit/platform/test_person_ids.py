"""Person ids are validated with python-stdnum; the patient key is a keyed HMAC."""
from __future__ import annotations

from datetime import date

import pytest

from flk.security.pseudonym import InvalidPersonId, is_patient_key, parse_person_id, patient_key

KEY = b"k"


@pytest.mark.parametrize("raw", ["19811218-9876", "811218-9876", "8112189876", "198112189876", " 811218 9876 "])
def test_personnummer_in_every_written_form_gives_the_same_twelve_digits(raw):
    assert parse_person_id(raw).value == "198112189876"
    assert parse_person_id(raw).kind == "personnummer"


def test_plus_sign_marks_a_person_aged_one_hundred_or_more():
    assert parse_person_id("121212+1212", today=date(2026, 1, 1)).value == "191212121212"
    assert parse_person_id("121212-1212", today=date(2026, 1, 1)).value == "201212121212"


@pytest.mark.parametrize("raw", ["19811218-9877", "19811318-9876", "abc", "", "1981121898765"])
def test_invalid_personnummer_is_refused(raw):
    with pytest.raises(InvalidPersonId):
        parse_person_id(raw)


def test_samordningsnummer_day_plus_sixty_is_accepted_with_its_kind():
    person = parse_person_id("19811278-9873")
    assert (person.kind, person.value) == ("samordningsnummer", "198112789873")


def test_samordningsnummer_with_a_wrong_check_digit_is_refused():
    with pytest.raises(InvalidPersonId):
        parse_person_id("19811278-9874")


def test_reservnummer_is_accepted_only_by_a_configured_regional_pattern_without_luhn():
    with pytest.raises(InvalidPersonId):
        parse_person_id("99-RV-12345")
    assert parse_person_id("99-RV-12345", reservnummer_pattern=r"99-RV-\d{5}").kind == "reservnummer"


def test_patient_key_depends_on_the_secret_key_and_never_contains_the_number():
    person = parse_person_id("19811218-9876")
    key_a, key_b = patient_key(person, b"a"), patient_key(person, b"b")
    assert key_a != key_b
    assert is_patient_key(key_a)
    assert "9876" not in key_a and "811218" not in key_a


def test_person_id_never_prints_its_number():
    person = parse_person_id("19811218-9876")
    assert "9876" not in repr(person) and "9876" not in str(person) and "9876" not in f"{person}"
