"""Data coverage: from which date a region's (or a care unit's) visit data are complete.

A continuity figure counts visits in a window ``(as_of - N months, as_of]``. Before the
date from which visit data are complete (set by the history import or by configuration)
the system simply has fewer visits, so a window reaching back before that date is
*incomplete*: fewer patients reach the eligibility threshold and COC is computed from
fewer visits. Such a figure is not comparable with one from a complete window and is
never shown as a plain goal figure.

Coverage is per region, and per care unit where the unit's source differs (a unit whose
EHR history starts later). A region-level figure is complete only when every unit's data
are: its effective start is the latest of the region's and the units' starts.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from .window import window_start

__all__ = ["DataCoverage", "WindowCoverage", "first_complete_day", "window_coverage"]


@dataclass(frozen=True, slots=True)
class DataCoverage:
    """What is known of a region's visit data: the region's start and per-unit exceptions.

    ``complete_from`` is the first day whose visits are all present (inclusive); ``None``
    means nobody has said, and every window counts as incomplete.
    """

    region_code: str
    complete_from: date | None = None
    units: Mapping[str, date] = field(default_factory=dict)

    def complete_from_for(self, care_unit_id: str | None) -> date | None:
        """The start that holds for one unit's figures, or for the region's (``None``/``''``)."""
        if care_unit_id:
            return self.units.get(care_unit_id, self.complete_from)
        if self.complete_from is None:
            return None
        return max([self.complete_from, *self.units.values()])


@dataclass(frozen=True, slots=True)
class WindowCoverage:
    """How much of one follow-up window the visit data cover."""

    as_of: date
    window_months: int
    window_start: date | None  #: exclusive; None when there is no window (window_months 0)
    complete_from: date | None
    covered_days: int | None
    window_days: int | None

    @property
    def fraction(self) -> float | None:
        """Share of the window's days from which data are complete (None when unknown)."""
        if self.covered_days is None or not self.window_days:
            return None
        return self.covered_days / self.window_days

    @property
    def complete(self) -> bool:
        """Whether every day of the window has complete data."""
        return self.window_days is not None and self.covered_days == self.window_days


def window_coverage(as_of: date, window_months: int, complete_from: date | None) -> WindowCoverage:
    """The coverage of the window ``(as_of - window_months, as_of]`` by data complete from ``complete_from``.

    Without a window (``window_months == 0``) every visit ever counts, so no two figures have
    windows of equal length: coverage is unknown and the figure is never complete. Without a
    known start, coverage is unknown too.
    """
    start = window_start(as_of, window_months)
    if start is None:
        return WindowCoverage(as_of, window_months, None, complete_from, None, None)
    days = (as_of - start).days  # the window's days: start + 1 ... as_of
    if complete_from is None:
        return WindowCoverage(as_of, window_months, start, None, None, days)
    first_covered = max(complete_from, start + timedelta(days=1))
    covered = max(0, (as_of - first_covered).days + 1)
    return WindowCoverage(as_of, window_months, start, complete_from, min(covered, days), days)


def first_complete_day(complete_from: date, window_months: int) -> date | None:
    """The first *as of* date whose window lies wholly in data complete from ``complete_from`` (None
    without a window: such figures are never complete)."""
    if window_months <= 0:
        return None
    day = complete_from
    while not window_coverage(day, window_months, complete_from).complete:
        day += timedelta(days=1)
    return day
