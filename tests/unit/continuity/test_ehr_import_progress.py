"""What `flk ehr import` shows on stderr while it publishes: progress and bad rows, on a terminal and in a log."""
from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

from services.continuity.entrypoints.ehr_import import Terminal


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def import_30_seconds(terminal: Terminal, clock: Clock) -> None:
    summary = SimpleNamespace(rows=0, visits=0, patients=0, bad=0)  # the counts an ImportSummary shows
    for second in range(1, 31):
        clock.now += 1
        summary.rows = summary.visits = second * 1_000
        summary.patients = second * 100
        if second == 12:
            summary.bad += 1
            terminal.bad_row(12_001, "occurred_at: not a date")
        terminal.tick(summary)  # type: ignore[arg-type]
    terminal.done()


def test_in_a_log_a_progress_line_every_ten_seconds_and_each_bad_row_on_its_own_line() -> None:
    stream, clock = io.StringIO(), Clock()
    import_30_seconds(Terminal(Path("visits.csv"), True, False, stream=stream, clock=clock), clock)
    assert stream.getvalue().splitlines() == [
        "1 000 rows, 1 000 visits, 100 patients, 0 bad | 1 000 rows/s",
        "11 000 rows, 11 000 visits, 1 100 patients, 0 bad | 1 000 rows/s",
        "visits.csv:12001: occurred_at: not a date",
        "21 000 rows, 21 000 visits, 2 100 patients, 1 bad | 1 000 rows/s",
    ]


def test_on_a_terminal_bad_rows_stay_readable_above_the_live_line() -> None:
    stream, clock = io.StringIO(), Clock()
    import_30_seconds(Terminal(Path("visits.csv"), True, True, stream=stream, clock=clock), clock)
    raw = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    shown = [line.split("\r")[-1].strip() for line in raw.split("\n") if line.split("\r")[-1].strip()]
    assert shown[0] == "visits.csv:12001: occurred_at: not a date"
    assert shown[-1].startswith("30 000 rows, 30 000 visits, 3 000 patients, 1 bad | 1 000 rows/s")
    assert len(shown) == 2


def test_without_progress_only_bad_rows_are_shown() -> None:
    stream, clock = io.StringIO(), Clock()
    import_30_seconds(Terminal(Path("visits.csv"), False, True, stream=stream, clock=clock), clock)
    assert stream.getvalue() == "visits.csv:12001: occurred_at: not a date\n"
