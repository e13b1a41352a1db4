"""What `flk simulate --progress` shows on stderr: a bar on a terminal, plain lines in a log."""
from __future__ import annotations

import io
import re

from tools.simulator.sinks import Progress


class FakeSimulation:
    def __init__(self) -> None:
        self.share = 0.0

    def progress(self) -> float:
        return self.share

    def clock(self) -> str:
        return f"2026-{1 + int(self.share * 10):02d}-01"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(progress: Progress, sim: FakeSimulation, clock: Clock, seconds: int) -> None:
    for second in range(seconds):
        sim.share = (second + 1) / seconds
        clock.now += 1
        progress.tick(1_000)
    progress.done()


def test_in_a_log_the_simulation_writes_a_line_every_ten_seconds_with_share_clock_events_and_rate() -> None:
    stream, sim, clock = io.StringIO(), FakeSimulation(), Clock()
    progress = Progress(sim, enabled=True, stream=stream, terminal=False, clock=clock)  # type: ignore[arg-type]
    run(progress, sim, clock, seconds=25)
    assert stream.getvalue().splitlines() == [
        "  4.0% sim 2026-01-01 | 1,000 events | 1,000/s",
        " 44.0% sim 2026-05-01 | 11,000 events | 1,000/s",
        " 84.0% sim 2026-09-01 | 21,000 events | 1,000/s",
        "100.0% sim 2026-11-01 | 25,000 events | 1,000/s",
    ]


def test_on_a_terminal_the_simulation_is_one_bar_left_at_its_end_state() -> None:
    stream, sim, clock = io.StringIO(), FakeSimulation(), Clock()
    progress = Progress(sim, enabled=True, stream=stream, terminal=True, clock=clock)  # type: ignore[arg-type]
    run(progress, sim, clock, seconds=5)
    screen = [line.split("\r")[-1] for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue()).split("\n")]
    assert [line for line in screen if line.strip()] == [screen[0]]
    assert "100%" in screen[0] and "sim 2026-11-01 | 5,000 events | 1,000/s" in screen[0]


def test_without_progress_nothing_is_written() -> None:
    stream, sim, clock = io.StringIO(), FakeSimulation(), Clock()
    run(Progress(sim, enabled=False, stream=stream, terminal=True, clock=clock), sim, clock, 5)  # type: ignore[arg-type]
    assert stream.getvalue() == ""
