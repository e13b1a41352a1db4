"""Calendar arithmetic the services share, on python-dateutil (no hand-written month arithmetic)."""
from __future__ import annotations

from datetime import date
from functools import lru_cache

from dateutil.relativedelta import relativedelta


@lru_cache(maxsize=8192)
def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` (may be negative), clamped to the month's last day:
    2024-08-31 minus 18 months is 2023-02-28. Cached: windows ask for the same few days again and again."""
    return day + relativedelta(months=months)
