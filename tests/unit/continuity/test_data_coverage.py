"""Data coverage of a continuity window (pure)."""
from __future__ import annotations

from datetime import date

import pytest

from services.continuity.domain.coverage import DataCoverage, first_complete_day, window_coverage

pytestmark = pytest.mark.unit


def test_a_window_reaching_back_before_complete_data_is_incomplete_with_the_covered_fraction():
    cov = window_coverage(date(2025, 1, 1), 18, complete_from=date(2024, 1, 1))
    assert not cov.complete
    assert cov.window_start == date(2023, 7, 1)
    assert cov.covered_days == 367 and cov.window_days == 550     # 2024-01-01 .. 2025-01-01
    assert cov.fraction == pytest.approx(367 / 550)


def test_a_window_wholly_inside_complete_data_is_complete():
    cov = window_coverage(date(2025, 7, 1), 18, complete_from=date(2024, 1, 1))
    assert cov.complete and cov.fraction == 1.0


def test_without_a_recorded_start_or_without_a_window_coverage_is_unknown_and_never_complete():
    unknown = window_coverage(date(2025, 7, 1), 18, complete_from=None)
    endless = window_coverage(date(2025, 7, 1), 0, complete_from=date(2000, 1, 1))
    assert (unknown.complete, unknown.fraction) == (False, None)
    assert (endless.complete, endless.fraction) == (False, None)


def test_the_first_complete_day_is_the_first_as_of_whose_window_starts_at_the_data():
    first = first_complete_day(date(2024, 1, 1), 18)
    assert first == date(2025, 7, 1)
    assert not window_coverage(date(2025, 6, 30), 18, date(2024, 1, 1)).complete
    assert first_complete_day(date(2024, 1, 1), 0) is None


def test_a_region_figure_is_complete_only_from_the_latest_units_start():
    coverage = DataCoverage("01", date(2024, 1, 1), {"SE-U2": date(2024, 6, 1)})
    assert coverage.complete_from_for("SE-U2") == date(2024, 6, 1)
    assert coverage.complete_from_for("SE-U1") == date(2024, 1, 1)
    assert coverage.complete_from_for(None) == date(2024, 6, 1)
