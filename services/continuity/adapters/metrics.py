"""The service's Prometheus metrics, behind a small probe. Prefix ``flk_continuity_``,
base units, and never a patient key in a label (labels: event type, topic, partition)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from flk.observability.metrics import group_lag_gauge

EVENTS = Counter("flk_continuity_events_processed_total", "Input events applied to patient state",
                 ["event_type"])
DEAD = Counter("flk_continuity_events_dead_lettered_total", "Input events sent to the DLQ",
               ["topic", "category"])
CHANGED = Counter("flk_continuity_indices_changed_total", "indices_changed events published")
BATCH_SECONDS = Histogram("flk_continuity_recompute_seconds", "Time to apply one batch (decode, update, "
                          "recompute, encode)", buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
BATCH_EVENTS = Histogram("flk_continuity_batch_events", "Events per consumed batch",
                         buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000))
ADVANCE_SECONDS = Histogram("flk_continuity_advance_seconds", "Time to advance every patient to a new day",
                            buckets=(.01, .1, 1, 5, 10, 30, 60, 300))
LAG = Gauge("flk_continuity_consumer_lag_records", "Records not yet consumed", ["topic", "partition"])
GROUP_LAG = group_lag_gauge()  # the group's lag as the broker sees it (ConsumerLagGrowing)
PATIENTS = Gauge("flk_continuity_patients", "Patients in this worker's tables")
STATE_BYTES = Gauge("flk_continuity_state_bytes", "Encoded bytes of patient state in this worker's tables")
AS_OF = Gauge("flk_continuity_as_of_timestamp_seconds", "The date (as Unix time) indices are computed as of")
SNAPSHOT_SECONDS = Histogram("flk_continuity_snapshot_seconds", "Time to aggregate and write a snapshot")
SNAPSHOT_AGE = Gauge("flk_continuity_snapshot_age_seconds",
                     "Seconds since this worker last wrote a snapshot (since its start before the first one)")
SNAPSHOT_INTERVAL = Gauge("flk_continuity_snapshot_interval_seconds",
                          "How often this worker writes the day's snapshot (FLK_CONTINUITY_SNAPSHOT_INTERVAL_S)")
SNAPSHOTS_DECLINED = Counter("flk_continuity_snapshots_declined_total",
                             "Snapshots not written because the state already held facts dated after their day")


class Probe:
    def processed(self, counts: dict[str, int]) -> None:
        for event_type, n in counts.items():
            EVENTS.labels(event_type).inc(n)

    def dead_lettered(self, topic: str, category: str) -> None:
        DEAD.labels(topic, category).inc()

    def changed(self, n: int) -> None:
        if n:
            CHANGED.inc(n)

    def batch(self, events: int, seconds: float) -> None:
        BATCH_SECONDS.observe(seconds)
        BATCH_EVENTS.observe(events)

    def lag(self, topic: str, partition: int, records: int) -> None:
        LAG.labels(topic, str(partition)).set(records)

    def group_lag(self, consumer: str, records: int) -> None:
        GROUP_LAG.labels(consumer).set(records)

    def tables(self, patients: int, state_bytes: int) -> None:
        PATIENTS.set(patients)
        STATE_BYTES.set(state_bytes)
