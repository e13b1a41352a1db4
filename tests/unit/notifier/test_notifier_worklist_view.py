"""The worklist page's view (pure): filters, sort order, paging, the count summary and the links
that keep the view (services.notifier.domain.worklist_view)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from flk.security.pseudonym import PersonId
from services.notifier.domain.care_gaps import GapCause
from services.notifier.domain.worklist import OpenGap, WorklistRow, shown_identity, worklist_rows
from services.notifier.domain.worklist_view import WorklistQuery, parse_query, select, summarise
from tests.support.builders import UNIT_A, a_patient_key

pytestmark = pytest.mark.unit

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)


def gap(serial: int, days: int, rub: int | None = 4, sabo: bool = False,
        cause: GapCause = GapCause.NEVER_ASSIGNED) -> OpenGap:
    return OpenGap(uuid.UUID(int=serial), a_patient_key(serial), UNIT_A, cause, rub, sabo,
                   NOW - timedelta(days=days, hours=1))


def rows(*gaps: OpenGap) -> list[WorklistRow]:
    return worklist_rows(gaps, {}, False, NOW, STOCKHOLM)


def serials(page) -> list[int]:
    return [r.gap_id.int for r in page.rows]


UNIT = rows(
    gap(1, 3, rub=5),
    gap(2, 40, rub=4, sabo=True, cause=GapCause.DOCTOR_LEFT),
    gap(3, 12, rub=None, sabo=True),
    gap(4, 90, rub=3, sabo=True, cause=GapCause.LOCUM_LIST),
    gap(5, 12, rub=4),
)


def test_the_default_view_lists_the_longest_waiting_first_with_ties_in_gap_order():
    assert serials(select(UNIT, WorklistQuery())) == [4, 2, 3, 5, 1]


@pytest.mark.parametrize("params, expected", [
    ({"sortera": "dagar", "ordning": "stigande"}, [1, 3, 5, 2, 4]),
    ({"sortera": "rub"}, [1, 2, 5, 4, 3]),  # RUB 5 first, unknown RUB last; ties the longest-waiting first
    ({"sortera": "rub", "ordning": "stigande"}, [3, 4, 2, 5, 1]),
    ({"sortera": "sabo"}, [4, 2, 3, 5, 1]),
    ({"sortera": "orsak", "ordning": "stigande"}, [4, 3, 5, 1, 2]),  # Endast på fiktiv…, Har aldrig…, Läkaren har slutat
])
def test_rows_sort_by_the_asked_column_and_order(params, expected):
    assert serials(select(UNIT, parse_query(params))) == expected


@pytest.mark.parametrize("params, expected", [
    ({"orsak": "doctor_left"}, [2]),
    ({"rub": "4-5"}, [2, 5, 1]),
    ({"rub": "3"}, [4]),
    ({"rub": "saknas"}, [3]),
    ({"sabo": "ja"}, [4, 2, 3]),
    ({"sabo": "nej"}, [5, 1]),
    ({"minst_dagar": "12"}, [4, 2, 3, 5]),
    ({"sabo": "ja", "rub": "4-5", "minst_dagar": "30"}, [2]),
    ({"orsak": "relisted"}, []),
])
def test_filters_by_cause_rub_sabo_and_days_open_combine(params, expected):
    assert serials(select(UNIT, parse_query(params))) == expected


def test_a_long_list_is_cut_into_pages_and_a_page_beyond_the_last_shows_the_last():
    many = rows(*(gap(i, i) for i in range(1, 58)))  # 57 gaps, open 1..57 days
    first = select(many, WorklistQuery())
    assert (len(first.rows), first.pages, first.first, first.last, first.matching) == (25, 3, 1, 25, 57)
    assert first.previous_link is None and first.next_link == "?sida=2"
    third = select(many, parse_query({"sida": "3"}))
    assert serials(third) == list(range(7, 0, -1)) and (third.first, third.last) == (51, 57)
    assert third.next_link is None and third.previous_link == "?sida=2"
    beyond = select(many, parse_query({"sida": "99", "per_sida": "50"}))
    assert beyond.query.page == 2 and len(beyond.rows) == 7
    assert select(many, parse_query({"sida": "2"})).previous_link == "?"  # back to the default view


def test_the_summary_counts_every_open_gap_whatever_the_filter():
    summary = select(UNIT, parse_query({"orsak": "doctor_left"})).summary
    assert (summary.total, summary.rub_4_5, summary.sabo, summary.long_open, summary.oldest_days) == (5, 3, 3, 2, 90)
    assert [(c.cause, c.count) for c in summary.by_cause] == [
        (GapCause.NEVER_ASSIGNED, 3), (GapCause.LOCUM_LIST, 1), (GapCause.DOCTOR_LEFT, 1)]
    assert summarise([]).oldest_days is None and summarise([]).total == 0


def test_links_keep_the_view_and_leave_defaults_out():
    q = parse_query({"sortera": "rub", "ordning": "stigande", "rub": "4-5", "sabo": "ja", "minst_dagar": "7",
                     "per_sida": "50", "sida": "2"})
    assert dict(parse_qsl(q.query_string()[1:])) == {
        "sortera": "rub", "ordning": "stigande", "rub": "4-5", "sabo": "ja", "minst_dagar": "7", "per_sida": "50",
        "sida": "2"}
    assert parse_query(dict(parse_qsl(q.query_string()[1:]))) == q  # a link gives back the same view
    assert WorklistQuery().query_string() == ""
    # a column header: the other order of the same column, or a new column from page 1
    by_rub = dict(parse_qsl(q.sort_link("rub")[1:]))
    assert by_rub["sortera"] == "rub" and "ordning" not in by_rub  # descending: the default order
    assert dict(parse_qsl(parse_query({"sortera": "rub"}).sort_link("rub")[1:]))["ordning"] == "stigande"
    by_days = dict(parse_qsl(q.sort_link("dagar")[1:]))
    assert "sida" not in by_days and "sortera" not in by_days and by_days["rub"] == "4-5"
    assert parse_query({"sortera": "orsak"}).sort_link("dagar") == ""  # days, most first: the default view


@pytest.mark.parametrize("params", [
    {"sortera": "namn"}, {"ordning": "upp"}, {"orsak": "nope"}, {"rub": "7"}, {"sabo": "kanske"},
    {"minst_dagar": "-1"}, {"minst_dagar": "9999"}, {"per_sida": "13"}, {"sida": "0"}, {"sida": "x"},
])
def test_a_value_a_parameter_cannot_take_is_reported_and_left_at_the_default(params):
    q = parse_query(params)
    assert len(q.problems) == 1 and "ignorerades" in q.problems[0]
    assert q == WorklistQuery()


def test_an_unknown_parameter_is_ignored_without_a_problem():
    assert parse_query({"tilldelning": "klar", "x": "1"}) == WorklistQuery()
    assert parse_query({"tilldelning": "klar"}).problems == ()


def test_a_name_from_the_vault_is_shown_with_the_personnummer_but_never_for_a_protected_identity():
    person = PersonId("personnummer", "189001019802")
    shown = shown_identity(a_patient_key(1), (person, False, "Karin Berg"), reidentify=True)
    assert (shown.text, shown.name) == ("18900101-9802", "Karin Berg")
    hidden = shown_identity(a_patient_key(1), (person, True, "Karin Berg"), reidentify=True)
    assert hidden.kind == "pseudonym" and hidden.name is None and "Karin" not in repr(hidden)
    assert shown_identity(a_patient_key(1), (person, False, "Karin Berg"), reidentify=False).name is None
