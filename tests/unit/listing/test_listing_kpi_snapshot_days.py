"""Which finished days the running listing service stores goal KPIs (G1, G3) for."""
from __future__ import annotations

from datetime import date

import pytest

from services.listing.adapters.kpi_snapshots import finished_days_to_store

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 2)


def test_a_fresh_register_stores_yesterday_only():
    assert finished_days_to_store(TODAY, None, 31) == [date(2026, 3, 1)]


def test_today_is_never_stored_it_stays_live():
    assert finished_days_to_store(TODAY, date(2026, 3, 1), 31) == []


def test_days_missed_while_the_service_was_down_are_stored_oldest_first():
    assert finished_days_to_store(TODAY, date(2026, 2, 26), 31) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]


def test_catching_up_is_bounded_to_the_most_recent_days():
    assert finished_days_to_store(TODAY, date(2025, 1, 1), 3) == [date(2026, 2, 27), date(2026, 2, 28),
                                                                 date(2026, 3, 1)]


def test_a_stored_day_after_today_stores_nothing():
    assert finished_days_to_store(TODAY, date(2026, 3, 5), 31) == []
