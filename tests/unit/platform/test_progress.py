"""flk.progress.StatusLine: what a user sees of a long-running command, on a terminal and in a log."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from flk.progress import StatusLine

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def screen(raw: str) -> list[str]:
    """What stays on a terminal: per line, the text after the last carriage return, colours removed."""
    return [line.split("\r")[-1] for line in ANSI.sub("", raw).split("\n")]


def test_in_a_log_a_plain_line_is_written_at_most_every_interval_and_the_last_state_at_the_end() -> None:
    stream, clock = io.StringIO(), Clock()
    status = StatusLine(stream=stream, terminal=False, log_every_s=10, clock=clock)
    for rows in range(1, 8):
        status.update(f"{rows} rows")
        clock.now += 4
    status.close()
    assert stream.getvalue().splitlines() == ["1 rows", "4 rows", "7 rows"]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_in_a_log_the_last_state_is_not_written_twice() -> None:
    stream, clock = io.StringIO(), Clock()
    status = StatusLine(stream=stream, terminal=False, log_every_s=10, clock=clock)
    status.update("5 rows")
    status.close()
    assert stream.getvalue() == "5 rows\n"


def test_on_a_terminal_one_line_is_redrawn_with_a_bar_and_left_in_place_at_the_end() -> None:
    stream, clock = io.StringIO(), Clock()
    status = StatusLine(stream=stream, terminal=True, bar=True, refresh_s=0.25, clock=clock)
    for n in range(5):
        status.update(f"{n} events", fraction=n / 4)
        clock.now += 0.3
    status.close()
    raw = stream.getvalue()
    assert raw.count("\r") >= 4  # redrawn in place
    assert screen(raw)[-2:][0].strip().endswith("0:00:00") and "4 events" in screen(raw)[-2]
    assert "100%" in screen(raw)[-2] and "━" in screen(raw)[-2]


def test_on_a_terminal_a_bad_row_message_is_printed_on_its_own_line_above_the_live_line() -> None:
    stream, clock = io.StringIO(), Clock()
    status = StatusLine(stream=stream, terminal=True, clock=clock)
    status.update("3 rows")
    status.print("VISITS.csv:3: skipped: [bad] occurred_at")
    clock.now += 1
    status.update("9 rows")
    status.close()
    lines = [line.strip() for line in screen(stream.getvalue()) if line.strip()]
    assert lines[0] == "VISITS.csv:3: skipped: [bad] occurred_at"  # whole, markup-like text kept
    assert lines[-1].startswith("9 rows")


def test_updates_within_the_interval_are_not_drawn_and_due_says_so() -> None:
    stream, clock = io.StringIO(), Clock()
    status = StatusLine(stream=stream, terminal=False, log_every_s=10, clock=clock)
    assert status.due()
    status.update("1 rows")
    clock.now += 5
    assert not status.due()
    clock.now += 5
    assert status.due()


def test_switched_off_it_shows_no_progress_but_still_the_messages() -> None:
    stream = io.StringIO()
    status = StatusLine(stream=stream, enabled=False, terminal=True)
    assert not status.due()
    status.update("1 rows")
    status.print("LISTINGS.csv:2: skipped: empty care_unit_id")
    status.close()
    assert stream.getvalue() == "LISTINGS.csv:2: skipped: empty care_unit_id\n"


def test_a_closed_status_line_can_show_the_next_phase() -> None:
    stream, clock = io.StringIO(), Clock()
    status = StatusLine(stream=stream, terminal=False, clock=clock)
    status.update("checking: 10 rows")
    status.close()
    status.update("importing: 10 rows")
    status.close()
    assert stream.getvalue().splitlines() == ["checking: 10 rows", "importing: 10 rows"]


def test_a_command_interrupted_while_the_live_line_is_shown_gets_the_last_state_and_its_cursor_back() -> None:
    script = ("import sys; from flk.progress import StatusLine\n"
              "status = StatusLine(terminal=True)\n"
              "status.update('7 rows')\n"
              "raise KeyboardInterrupt\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    assert result.returncode != 0
    assert result.stderr.startswith("\x1b[?25l")  # the cursor was hidden for the live line ...
    assert result.stderr.endswith("\x1b[?25h")  # ... and is shown again
    shown = screen(result.stderr)
    assert "KeyboardInterrupt" in shown  # the traceback whole, above the line
    assert shown[-2].startswith("7 rows")
