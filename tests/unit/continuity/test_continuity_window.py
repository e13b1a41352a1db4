"""The follow-up window: start exclusive, end inclusive, months clamp to the month's end."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.continuity.domain.window import add_months, in_window, window_bounds, window_start

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("as_of", "months", "start"),
    [
        (date(2024, 8, 31), 18, date(2023, 2, 28)),  # clamps to the end of February
        (date(2025, 8, 31), 18, date(2024, 2, 29)),  # leap year
        (date(2025, 6, 15), 18, date(2023, 12, 15)),
        (date(2025, 1, 31), 1, date(2024, 12, 31)),
        (date(2025, 3, 31), 1, date(2025, 2, 28)),
        (date(2025, 5, 31), 12, date(2024, 5, 31)),
    ],
)
def test_window_start_is_as_of_minus_n_months_clamped_to_month_end(as_of: date, months: int, start: date) -> None:
    assert window_start(as_of, months) == start


def test_zero_months_means_no_window() -> None:
    assert window_start(date(2025, 1, 1), 0) is None
    assert in_window(date(1900, 1, 1), date(2025, 1, 1), 0)
    assert not in_window(date(2025, 1, 2), date(2025, 1, 1), 0)


def test_visit_exactly_at_window_start_is_excluded() -> None:
    assert not in_window(date(2023, 2, 28), date(2024, 8, 31), 18)


def test_visit_the_day_after_window_start_is_included() -> None:
    assert in_window(date(2023, 3, 1), date(2024, 8, 31), 18)


def test_visit_on_the_as_of_date_is_included() -> None:
    assert in_window(date(2024, 8, 31), date(2024, 8, 31), 18)


def test_visit_after_the_as_of_date_is_excluded() -> None:
    assert not in_window(date(2024, 9, 1), date(2024, 8, 31), 18)


def test_negative_months_are_rejected() -> None:
    with pytest.raises(ValueError):
        window_start(date(2025, 1, 1), -1)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)), st.integers(0, 600))
def test_add_months_then_back_never_lands_after_the_start(day: date, months: int) -> None:
    moved = add_months(day, months)
    assert (moved.year * 12 + moved.month) - (day.year * 12 + day.month) == months
    assert moved.day <= day.day
    assert add_months(moved, -months) <= day


@given(
    st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 12, 31)),
    st.integers(0, 36),
    st.integers(-2000, 10),
)
def test_window_bounds_agree_with_membership(as_of: date, months: int, offset: int) -> None:
    day = as_of + timedelta(days=offset)
    lo, hi = window_bounds(as_of, months)
    assert (lo < day.toordinal() <= hi) == in_window(day, as_of, months)
