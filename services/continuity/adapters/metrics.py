"""The service's Prometheus metrics, behind a small probe. Prefix ``flk_continuity_``,
base units, and never a patient key in a label (labels: event type, topic, partition).

The metrics live in a registry of the worker's own (no module globals): two workers in one process
(tests, benches) count apart, and the API serves the worker's registry at ``/metrics``.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timezone

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flk.observability.metrics import group_lag_gauge


class ContinuityMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.events = Counter("flk_continuity_events_processed_total", "Input events applied to patient state",
                              ["event_type"], registry=r)
        self.dead = Counter("flk_continuity_events_dead_lettered_total", "Input events sent to the DLQ",
                            ["topic", "category"], registry=r)
        self.changed = Counter("flk_continuity_indices_changed_total", "indices_changed events published", registry=r)
        self.batch_seconds = Histogram("flk_continuity_recompute_seconds", "Time to apply one batch (decode, "
                                       "update, recompute, encode)",
                                       buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5), registry=r)
        self.batch_events = Histogram("flk_continuity_batch_events", "Events per consumed batch",
                                      buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000), registry=r)
        self.advance_seconds = Histogram("flk_continuity_advance_seconds", "Time to advance every patient to a new "
                                         "day", buckets=(.01, .1, 1, 5, 10, 30, 60, 300), registry=r)
        # a failover's two waits: the newly owned partitions' tables brought to their changelog's end, then
        # every patient of them recomputed before the partitions' inputs are processed again
        self.restore_seconds = Histogram("flk_continuity_restore_seconds", "Time to restore newly assigned "
                                         "partitions from the changelog (fence, read, seek)",
                                         buckets=(.01, .1, .5, 1, 5, 10, 30, 60, 300), registry=r)
        self.restored_records = Counter("flk_continuity_restored_records_total", "Changelog records read by restores",
                                        registry=r)
        self.refresh_seconds = Histogram("flk_continuity_refresh_seconds", "Time to recompute every patient of a "
                                         "partition after its assignment or a unit-register change",
                                         buckets=(.01, .1, .5, 1, 5, 10, 30, 60, 300), registry=r)
        self.lag = Gauge("flk_continuity_consumer_lag_records", "Records not yet consumed", ["topic", "partition"],
                         registry=r)
        self.patients = Gauge("flk_continuity_patients", "Patients in this worker's tables", registry=r)
        self.state_bytes = Gauge("flk_continuity_state_bytes", "Encoded bytes of patient state in this worker's "
                                 "tables", registry=r)
        self.as_of = Gauge("flk_continuity_as_of_timestamp_seconds", "The date (as Unix time) indices are computed "
                           "as of", registry=r)
        self.snapshot_seconds = Histogram("flk_continuity_snapshot_seconds", "Time to aggregate and write a snapshot",
                                          registry=r)
        self.snapshot_age = Gauge("flk_continuity_snapshot_age_seconds", "Seconds since this worker last wrote a "
                                  "snapshot (since its start before the first one)", registry=r)
        self.snapshot_interval = Gauge("flk_continuity_snapshot_interval_seconds", "How often this worker writes "
                                       "the day's snapshot (FLK_CONTINUITY_SNAPSHOT_INTERVAL_S)", registry=r)
        # the group's lag as the broker sees it (the ConsumerLagGrowing alert)
        self.group_lag = group_lag_gauge(r)
        self.snapshots_declined = Counter("flk_continuity_snapshots_declined_total", "Snapshots not written because "
                                          "the state already held facts dated after their day, or this replica "
                                          "held only some of the partitions", registry=r)


class Probe:
    def __init__(self, metrics: ContinuityMetrics | None = None) -> None:
        self.metrics = metrics or ContinuityMetrics()

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def processed(self, counts: dict[str, int]) -> None:
        for event_type, n in counts.items():
            self.metrics.events.labels(event_type).inc(n)

    def dead_lettered(self, topic: str, category: str) -> None:
        self.metrics.dead.labels(topic, category).inc()

    def changed(self, n: int) -> None:
        if n:
            self.metrics.changed.inc(n)

    def changed_total(self) -> float:
        return self.metrics.changed._value.get()

    def batch(self, events: int, seconds: float) -> None:
        self.metrics.batch_seconds.observe(seconds)
        self.metrics.batch_events.observe(events)

    def lag(self, topic: str, partition: int, records: int) -> None:
        self.metrics.lag.labels(topic, str(partition)).set(records)

    def group_lag(self, consumer: str, records: int) -> None:
        self.metrics.group_lag.labels(consumer).set(records)

    def tables(self, patients: int, state_bytes: int) -> None:
        self.metrics.patients.set(patients)
        self.metrics.state_bytes.set(state_bytes)

    def as_of(self, day: date) -> None:
        self.metrics.as_of.set(datetime.combine(day, datetime.min.time(), timezone.utc).timestamp())

    def advanced(self, seconds: float) -> None:
        self.metrics.advance_seconds.observe(seconds)

    def restored(self, records: int, seconds: float) -> None:
        self.metrics.restored_records.inc(records)
        self.metrics.restore_seconds.observe(seconds)

    def refreshed(self, seconds: float) -> None:
        self.metrics.refresh_seconds.observe(seconds)

    def snapshot_written(self, seconds: float) -> None:
        self.metrics.snapshot_seconds.observe(seconds)

    def snapshots_every(self, interval_s: float, written_at: Callable[[], float]) -> None:
        """The ContinuitySnapshotStale alert's inputs: the interval, and the age of the last snapshot
        (``written_at()``, Unix time) computed when Prometheus scrapes."""
        self.metrics.snapshot_interval.set(interval_s)
        self.metrics.snapshot_age.set_function(lambda: time.time() - written_at())

    def snapshot_declined(self) -> None:
        self.metrics.snapshots_declined.inc()
