"""When the continuity worker writes its periodic snapshot (bootstrap.ContinuityWorker.snapshot_due):
not while it catches up with a backlog, not again for a state that did not change; and at once when
asked for (SIGUSR1)."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import date

import pytest

from flk.settings import PlatformSettings
from services.continuity.bootstrap import UNCHANGED_REWRITE_INTERVALS, ContinuityWorker
from services.continuity.settings import ContinuityServiceSettings

pytestmark = pytest.mark.unit

INTERVAL = 2.0


def _worker(**values) -> ContinuityWorker:
    settings = ContinuityServiceSettings(platform=PlatformSettings(environment="test"), store="memory",
                                         as_of=date(2026, 3, 5), **{"snapshot_interval_s": INTERVAL, **values})
    return ContinuityWorker(settings)


def _written(worker: ContinuityWorker, at: float) -> None:
    """What snapshot_now records after writing (without a database)."""
    worker._snapshot_of, worker._snapshot_checked = worker._state_version(), at


def test_the_first_snapshot_is_due_when_the_worker_is_not_behind():
    worker = _worker()
    worker._snapshot_checked = 0.0
    assert worker.snapshot_due(INTERVAL)


def test_no_snapshot_while_the_worker_catches_up_until_the_longest_deferral(monkeypatch):
    worker = _worker(snapshot_max_defer_s=100.0)
    monkeypatch.setattr(worker, "_lagging", lambda: True)
    _written(worker, 0.0)
    worker.processed_events += 5_000
    assert not worker.snapshot_due(50.0)
    assert worker.snapshot_due(100.0)


def test_a_lagging_worker_defers_two_intervals_by_default(monkeypatch):
    worker = _worker()
    monkeypatch.setattr(worker, "_lagging", lambda: True)
    _written(worker, 0.0)
    worker.processed_events += 1
    assert not worker.snapshot_due(2 * INTERVAL - 0.1)
    assert worker.snapshot_due(2 * INTERVAL)


def test_an_unchanged_state_is_not_rewritten_every_interval_and_counts_as_fresh():
    worker = _worker()
    _written(worker, 0.0)
    worker._snapshot_written_at = 0.0
    assert not worker.snapshot_due(INTERVAL)
    assert worker._snapshot_written_at > 0.0  # the staleness gauge: the stored snapshot is the state's
    assert worker.snapshot_due(UNCHANGED_REWRITE_INTERVALS * INTERVAL)


@pytest.mark.parametrize("change", ["events", "refresh", "new day"])
def test_a_changed_state_that_is_caught_up_gets_its_snapshot_at_the_next_interval(change):
    worker = _worker()
    _written(worker, 0.0)
    if change == "events":
        worker.processed_events += 1
    elif change == "refresh":
        worker._refreshes += 1
    else:
        worker.processor.as_of = date(2026, 3, 6)
    assert worker.snapshot_due(INTERVAL)


async def test_a_requested_snapshot_is_written_at_once_even_when_none_is_due(monkeypatch):
    """SIGUSR1 (`request_snapshot`): the main job asks for the snapshot at each snapshot date instead of the
    worker rewriting every patient's row at short intervals of a replay."""
    worker = _worker(snapshot_interval_s=3600.0)  # the loop would not write one on its own for an hour
    written: list[float] = []

    async def snapshot_now() -> bool:
        written.append(time.monotonic())
        return True

    monkeypatch.setattr(worker, "snapshot_now", snapshot_now)
    loop = asyncio.create_task(worker._snapshots())
    try:
        await asyncio.sleep(0.05)
        assert written == []
        worker.request_snapshot()
        for _ in range(100):
            if written:
                break
            await asyncio.sleep(0.01)
        assert len(written) == 1
        await asyncio.sleep(0.05)
        assert len(written) == 1, "one request, one snapshot"
    finally:
        worker.stopping.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def test_a_snapshot_requested_when_snapshots_are_off_is_not_written():
    worker = _worker(snapshot_enabled=False)
    worker.request_snapshot()
    assert not worker._snapshot_requested.is_set()


async def test_sigusr1_asks_the_worker_for_its_snapshot_and_stops_no_process():
    """The signal reaches `request_snapshot`; a process without snapshots (a serving replica) only logs it."""
    from services.continuity.bootstrap import run_until_signalled

    class Process:
        def __init__(self, with_snapshots: bool) -> None:
            self.stopping = asyncio.Event()
            self.requests = 0
            if with_snapshots:
                self.request_snapshot = self._request

        def _request(self) -> None:
            self.requests += 1
            self.stopping.set()

        async def start(self) -> None:
            os.kill(os.getpid(), signal.SIGUSR1)

        async def stop(self) -> None:
            pass

    worker = Process(with_snapshots=True)
    await asyncio.wait_for(run_until_signalled(worker), 5.0)
    assert worker.requests == 1
    replica = Process(with_snapshots=False)
    runs = asyncio.create_task(run_until_signalled(replica))
    await asyncio.sleep(0.2)  # the signal was handled (logged), the process runs on
    assert not runs.done()
    replica.stopping.set()
    await asyncio.wait_for(runs, 5.0)
