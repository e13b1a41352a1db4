"""The clock port: every time the notifier acts on comes from here, so tests can move time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time (UTC), optionally shifted: tests ``advance()`` it past a grace period
    while everything else (retries, Retry-After) keeps running in real time."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def set(self, moment: datetime) -> None:
        """Make ``now()`` return ``moment`` from here on (time keeps flowing from it)."""
        self.offset = moment - datetime.now(timezone.utc)
