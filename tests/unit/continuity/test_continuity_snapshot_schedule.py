"""When the continuity worker writes its periodic snapshot (bootstrap.ContinuityWorker.snapshot_due):
not while it catches up with a backlog, not again for a state that did not change."""
from __future__ import annotations

from datetime import date

import pytest

from flk.settings import PlatformSettings
from services.continuity.bootstrap import UNCHANGED_REWRITE_INTERVALS, ContinuityWorker
from services.continuity.settings import ContinuityServiceSettings

pytestmark = pytest.mark.unit

INTERVAL = 2.0


def _worker(**values) -> ContinuityWorker:
    settings = ContinuityServiceSettings(platform=PlatformSettings(environment="test"), store="memory", snapshot_interval_s=INTERVAL,
                                         as_of=date(2026, 3, 5), **values)
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
