"""The worklist's pure rules: who is re-identified, how, row order, doctors offered, the command."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from flk.events.contracts import contracts
from flk.security.pseudonym import PersonId
from flk.security.tokens import Principal, Role
from services.notifier.domain.care_gaps import GapCause
from services.notifier.domain.worklist import (
    DoctorList, OpenGap, assign_command, csrf_matches, days_open, doctors_with_free_capacity, format_person_id,
    may_reidentify, safe_next_path, shown_identity, worklist_rows,
)
from tests.support.builders import DOCTOR_1, UNIT_A, UNIT_B, a_patient_key

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)
PERSON = PersonId("personnummer", "195001010017")
KEY = a_patient_key(1)


def staff(role: Role = Role.CLINICIAN, units=(UNIT_A,)) -> Principal:
    return Principal("SE2321000016-U001", role, frozenset(units))


def a_gap(days: float, serial: int = 1, cause: GapCause = GapCause.NEVER_ASSIGNED) -> OpenGap:
    return OpenGap(uuid.uuid4(), a_patient_key(serial), UNIT_A, cause, 5, False, NOW - timedelta(days=days))


def a_list(list_id: str, free: int, kind: str = "doctor", name: str = "Dr A") -> DoctorList:
    return DoctorList(list_id, kind, DOCTOR_1 if kind == "doctor" else None, name, 1100 - free, 1100, free)


@pytest.mark.parametrize("principal, expected", [
    (staff(Role.CLINICIAN), True),
    (staff(Role.VERKSAMHETSCHEF), True),
    (staff(Role.CLINICIAN, (UNIT_B,)), False),
    (staff(Role.LISTING_ADMIN, ()), False),
    (staff(Role.SERVICE, ()), False),
    (staff(Role.ANALYST, (UNIT_A,)), False),
])
def test_only_staff_of_the_listing_unit_are_shown_personnummer(principal, expected):
    assert may_reidentify(principal, UNIT_A) is expected


def test_personnummer_is_shown_with_a_hyphen_before_the_last_four_digits():
    assert format_person_id(PERSON) == "19500101-0017"
    assert format_person_id(PersonId("reservnummer", "99-ABC-123")) == "99-ABC-123"


def test_a_protected_identity_is_shown_only_by_its_pseudonymous_key():
    identity = shown_identity(KEY, (PERSON, True), reidentify=True)
    assert (identity.text, identity.kind) == (KEY, "pseudonym")
    assert "Skyddad identitet" in identity.note


def test_a_viewer_who_may_not_reidentify_sees_the_key_even_for_an_unprotected_identity():
    assert shown_identity(KEY, (PERSON, False), reidentify=False).text == KEY


def test_a_patient_missing_from_the_vault_is_shown_by_key_with_a_note():
    identity = shown_identity(KEY, None, reidentify=True)
    assert identity.text == KEY and "saknas" in identity.note


def test_days_open_counts_whole_days_and_never_goes_negative():
    assert days_open(NOW - timedelta(days=3, hours=23), NOW) == 3
    assert days_open(NOW + timedelta(hours=1), NOW) == 0


def test_rows_list_the_longest_waiting_first_with_swedish_cause_and_rub_text():
    rows = worklist_rows([a_gap(2, 1), a_gap(30, 2, GapCause.DOCTOR_LEFT)], {a_patient_key(2): (PERSON, False)},
                         reidentify=True, now=NOW, tz=STOCKHOLM)
    assert [r.days_open for r in rows] == [30, 2]
    assert (rows[0].identity.text, rows[0].cause_text, rows[0].rub_text) == (
        "19500101-0017", "Läkaren har slutat", "RUB 5 (mycket hög sjuklighet)")
    assert rows[1].identity.kind == "pseudonym"


def test_opened_on_is_the_local_date():
    gap = OpenGap(uuid.uuid4(), KEY, UNIT_A, GapCause.RELISTED, None, True,
                  datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc))
    (row,) = worklist_rows([gap], {}, False, NOW, STOCKHOLM)
    assert row.opened_on == "2026-03-02"
    assert row.rub_text == "RUB saknas"


def test_only_named_doctors_with_free_capacity_are_offered_most_room_first():
    lists = [a_list("a", 10, name="Dr A"), a_list("b", 0, name="Dr B"), a_list("c", 200, name="Dr C"),
             a_list("f", 500, kind="fictive", name="VC Dr X")]
    assert [d.list_id for d in doctors_with_free_capacity(lists)] == ["c", "a"]


def test_a_doctor_whose_role_at_the_unit_has_ended_is_not_offered():
    left = DoctorList("l", "doctor", DOCTOR_1, "Dr Slutat", 100, 1100, 1000, active=False)
    assert doctors_with_free_capacity([left]) == []


def test_the_assign_command_satisfies_the_contract_and_names_the_doctor_and_the_local_date():
    gap = a_gap(3)
    late_evening = datetime(2026, 3, 20, 23, 30, tzinfo=timezone.utc)  # already the 21st in Stockholm
    command = assign_command(gap, a_list(f"list-{DOCTOR_1}", 10), "SE2321000016-U001", "nonce", late_evening,
                             STOCKHOLM)
    contracts().validate("fast_lakarkontakt.assign.v1", command)
    assert (command["patient_key"], command["care_unit_id"], command["practitioner_id"]) == (
        gap.patient_key, UNIT_A, DOCTOR_1)
    assert command["effective_date"] == "2026-03-21"
    assert command["requested_at"] == "2026-03-20T23:30:00Z"


def test_the_same_rendered_form_gives_the_same_command_id_and_a_new_page_a_new_one():
    gap, doctor = a_gap(3), a_list("list-1", 10)
    first = assign_command(gap, doctor, "u", "nonce-1", NOW, STOCKHOLM)["command_id"]
    assert assign_command(gap, doctor, "u", "nonce-1", NOW, STOCKHOLM)["command_id"] == first
    assert assign_command(gap, doctor, "u", "nonce-2", NOW, STOCKHOLM)["command_id"] != first
    assert assign_command(gap, a_list("list-2", 10), "u", "nonce-1", NOW, STOCKHOLM)["command_id"] != first


def test_an_open_gap_never_prints_its_patient_key():
    gap = a_gap(1)
    assert gap.patient_key not in repr(gap) and gap.patient_key not in str(gap)


@pytest.mark.parametrize("cookie, form, expected", [
    ("abc", "abc", True), ("abc", "abd", False), (None, "abc", False), ("abc", None, False), ("", "", False)])
def test_csrf_double_submit_needs_the_form_token_to_equal_the_cookie(cookie, form, expected):
    assert csrf_matches(cookie, form) is expected


@pytest.mark.parametrize("candidate, expected", [
    ("/units/X/worklist", "/units/X/worklist"), ("//evil.example/", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), (None, "/"), ("", "/")])
def test_login_only_returns_to_a_path_on_this_site(candidate, expected):
    assert safe_next_path(candidate, "/") == expected
