"""The follow-up window: month arithmetic and membership.

A visit counts when ``as_of - N months < visit date <= as_of`` (start exclusive,
end inclusive), compared on calendar dates.  Month arithmetic clamps to the end
of the month: 2024-08-31 minus 18 months is 2023-02-28.  ``N = 0`` means no
window: every visit up to and including *as of* counts.
"""
from __future__ import annotations

from datetime import date

from flk.dates import add_months

__all__ = ["add_months", "window_start", "in_window", "window_bounds"]


def window_start(as_of: date, months: int) -> date | None:
    """The exclusive start of the window ending at ``as_of``; None for no window."""
    if months == 0:
        return None
    if months < 0:
        raise ValueError(f"months must be >= 0, got {months}")
    return add_months(as_of, -months)


def in_window(day: date, as_of: date, months: int) -> bool:
    """Whether a visit on ``day`` counts in the window ending at ``as_of``."""
    start = window_start(as_of, months)
    return (start is None or day > start) and day <= as_of


def window_bounds(as_of: date, months: int) -> tuple[int, int]:
    """The window as proleptic ordinals ``(lo, hi)``: counts when ``lo < ordinal <= hi``.

    With no window ``lo`` is 0 (every real date has ordinal >= 1).
    """
    start = window_start(as_of, months)
    return (0 if start is None else start.toordinal()), as_of.toordinal()
