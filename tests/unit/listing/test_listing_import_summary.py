"""What `flk listing import` prints: the administrator's summary and the progress indicator."""
from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

from services.listing.domain.import_check import ImportReport, OverCapacity, Violation
from services.listing.entrypoints.import_report import Progress, render_summary


def a_report(dry_run: bool = True) -> ImportReport:
    report = ImportReport(profile="vastmanland@2", as_of=date(2026, 6, 1), dry_run=dry_run, rows=30)
    report.add(Violation.LOCUM_AS_FLK, list(range(2, 27)))
    report.over_capacity = [
        OverCapacity("L-1", "SE-VCA", "SE-L001", 1250, 1100, "specialist_benchmark", "1.00"),
        OverCapacity("L-2", "SE-VCA", "SE-L002", 300, 275, "st_benchmark", "0.50"),
    ]
    return report


def test_summary_names_rule_outcome_and_line_numbers_and_shows_list_size_against_capacity():
    text = render_summary(a_report(), Path("LISTINGS.csv"))
    assert "DRY RUN" in text
    assert "[F2] locum_as_flk: 25 rows — listing imported, patient on the unit's fictive list" in text
    assert "lines: 2, 3, 4" in text and "(+5 more)" in text
    assert "1250 patients vs capacity 1100 (1 100 × 1.00 FTE)" in text
    assert "300 patients vs capacity 275 (ST 550 × 0.50 FTE)" in text


def test_summary_of_a_clean_import_says_so():
    report = ImportReport(profile="national@1", as_of=date(2026, 6, 1), dry_run=False, rows=3, listings_started=3)
    text = render_summary(report, Path("LISTINGS.csv"))
    assert "imported: 3 listings" in text and "no rule violations" in text


def test_progress_is_written_every_n_rows_on_stderr_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream, every=2, terminal=False)
    for rows in range(1, 6):
        progress.tick("checking", rows)
    progress.done()
    assert stream.getvalue().splitlines() == ["checking: 2 rows", "checking: 4 rows"]


def test_progress_on_a_terminal_is_one_live_line_per_phase_with_the_share_read():
    stream = io.StringIO()
    progress = Progress(stream, every=2, terminal=True)
    reader = FakeReader(size=1_000)
    for phase in ("checking", "importing"):
        for rows in range(1, 5):
            reader.at = rows * 250
            progress.tick(phase, rows, reader)  # type: ignore[arg-type]
        progress.done()
    screen = [line.split("\r")[-1] for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue()).split("\n")]
    shown = [line for line in screen if line.strip()]
    assert [line.split("%")[1].split("0:00")[0].strip() for line in shown] == [
        "checking: 4 rows", "importing: 4 rows"]  # each phase's line left with its last state
    assert all("100%" in line and "━" in line for line in shown)


class FakeReader:
    def __init__(self, size: int) -> None:
        self.size, self.at = size, 0

    def position(self) -> int:
        return self.at


def test_progress_can_be_switched_off():
    stream = io.StringIO()
    Progress(stream, every=1, enabled=False).tick("checking", 1)
    assert stream.getvalue() == ""
