"""What `flk continuity indices` shows on stderr while it reads: progress and bad rows, on a terminal and in a log."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.continuity.entrypoints.cli import Report

VISITS = Path("VISITS.csv")


def screen(raw: str) -> list[str]:
    """What stays on a terminal: per line, the text after the last carriage return, colours removed."""
    lines = [line.split("\r")[-1] for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw).split("\n")]
    return [line.strip() for line in lines if line.strip()]


def read_with_a_bad_row(report: Report) -> None:
    report.rows = 250_000
    report.tick("visits", 1_000)
    report.bad_row(VISITS, 250_001, "occurred_at [2026-13-01] is not a date")
    report.rows = 300_000
    report.tick("visits", 1_200)
    report.done()


def test_on_a_terminal_a_bad_row_stays_readable_above_the_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    read_with_a_bad_row(Report(progress=True, terminal=True))
    shown = screen(capsys.readouterr().err)
    assert shown[0] == "VISITS.csv:250001: skipped: occurred_at [2026-13-01] is not a date"
    assert shown[-1].startswith("visits: 300,000 rows, 1,200 patients")
    assert len(shown) == 2


def test_in_a_log_progress_and_bad_rows_are_plain_lines_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    read_with_a_bad_row(Report(progress=True, terminal=False))
    assert capsys.readouterr().err.splitlines() == [
        "visits: 250,000 rows, 1,000 patients",
        "VISITS.csv:250001: skipped: occurred_at [2026-13-01] is not a date",
        "visits: 300,000 rows, 1,200 patients",
    ]


def test_without_progress_only_the_bad_rows_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    read_with_a_bad_row(Report(progress=False, terminal=True))
    assert capsys.readouterr().err == "VISITS.csv:250001: skipped: occurred_at [2026-13-01] is not a date\n"
