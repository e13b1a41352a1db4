"""A replay moves the continuity worker's day without restarting it: the day is read from a clock file
(``as_of_file``) at start, at each timer check, and at once on SIGUSR2 (``request_advance``)."""
from __future__ import annotations

import asyncio
import os
import signal
from datetime import date

import pytest

from flk.settings import PlatformSettings
from services.continuity.bootstrap import ContinuityWorker, run_until_signalled
from services.continuity.settings import ContinuityServiceSettings

pytestmark = pytest.mark.unit


def _settings(clock, **values) -> ContinuityServiceSettings:
    return ContinuityServiceSettings(platform=PlatformSettings(environment="test"), store="memory",
                                     as_of_file=clock, **values)


def test_the_replay_clock_file_gives_the_day_over_a_pinned_one_and_empty_means_the_calendars(tmp_path):
    clock = tmp_path / "as-of"
    clock.write_text("2025-09-06\n")
    settings = _settings(clock, as_of=date(2026, 3, 5))
    assert settings.today() == date(2025, 9, 6)
    clock.write_text("2025-12-06")
    assert settings.today() == date(2025, 12, 6), "read again at each look, not once"
    clock.write_text("")
    assert settings.today() == settings.calendar_today()
    clock.write_text("the sixth of December")
    with pytest.raises(ValueError):
        settings.today()


async def test_a_look_at_the_clock_asked_for_moves_an_idle_worker_at_once_and_only_forwards(tmp_path):
    clock = tmp_path / "as-of"
    clock.write_text("2025-09-06")
    worker = ContinuityWorker(_settings(clock, advance_interval_s=3600.0))
    worker.store.open(0)
    worker.producers = {0: object()}
    assert worker.processor.as_of == date(2025, 9, 6)
    timer = asyncio.create_task(worker._timer())
    try:
        clock.write_text("2025-12-06")
        worker.request_advance()
        await asyncio.wait_for(_until(lambda: worker.processor.as_of == date(2025, 12, 6)), 2.0)
        assert worker._needs_refresh == {0}, "an hour's interval, yet moved at once; every patient to recompute"
        worker._needs_refresh.clear()
        clock.write_text("2025-06-01")  # a clock moved back: the day stays
        worker.request_advance()
        await asyncio.sleep(0.05)
        worker.settings.as_of_file = tmp_path / "gone"  # a clock file that went away: the day stays
        worker.request_advance()
        await asyncio.sleep(0.05)
        assert worker.processor.as_of == date(2025, 12, 6) and not worker._needs_refresh
        assert not timer.done()
    finally:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)


async def test_the_timer_alone_advances_every_patient_at_once_when_the_day_moves(tmp_path, monkeypatch):
    """The daily advance (no look asked for) recomputes every patient at once, timed by its histogram."""
    clock = tmp_path / "as-of"
    clock.write_text("2025-09-06")
    worker = ContinuityWorker(_settings(clock, advance_interval_s=0.02))
    advanced: list[date] = []

    async def advance_locked(day: date) -> None:
        assert worker.lock.locked()
        advanced.append(day)
        worker.processor.as_of = day

    monkeypatch.setattr(worker, "_advance_locked", advance_locked)
    timer = asyncio.create_task(worker._timer())
    try:
        clock.write_text("2025-09-07")
        await asyncio.wait_for(_until(lambda: advanced), 2.0)
        await asyncio.sleep(0.1)
        assert advanced == [date(2025, 9, 7)] and not worker._needs_refresh
    finally:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)


def test_a_batch_after_a_look_asked_for_is_processed_as_of_the_new_day_every_patient_recomputed_first(tmp_path):
    clock = tmp_path / "as-of"
    clock.write_text("2025-09-06")
    worker = ContinuityWorker(_settings(clock))
    for p in (0, 1, 2):
        worker.store.open(p)
    worker.producers = {0: object(), 1: object()}  # partition 2 is held but not processed here
    worker._take_clock()
    assert worker.processor.as_of == date(2025, 9, 6) and not worker._needs_refresh, "nothing asked: nothing moves"
    clock.write_text("2025-12-06")
    worker._take_clock()
    assert worker.processor.as_of == date(2025, 9, 6), "a moved clock is read when a look is asked for"
    worker.request_advance()
    worker._take_clock()
    assert worker.processor.as_of == date(2025, 12, 6)
    assert worker._needs_refresh == {0, 1} and not worker._advance_requested.is_set()


async def test_sigusr2_asks_the_process_to_look_at_its_clock_and_stops_nothing():
    class Process:
        def __init__(self) -> None:
            self.stopping = asyncio.Event()
            self.looks = 0

        def request_advance(self) -> None:
            self.looks += 1
            self.stopping.set()

        async def start(self) -> None:
            os.kill(os.getpid(), signal.SIGUSR2)

        async def stop(self) -> None:
            pass

    process = Process()
    await asyncio.wait_for(run_until_signalled(process), 5.0)
    assert process.looks == 1


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)
