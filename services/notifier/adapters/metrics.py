"""Observability as an injected probe (engineering.md §1.10). Prefix ``flk_notifier_``.

Labels are bounded: channel, kind, event type, outcome and the care unit's HSA-id (a region
has a bounded number of units). Never a patient key.
"""
from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flk.observability.metrics import group_lag_gauge


class NotifierProbe(Protocol):
    # consumer (flk.events.consumer.ConsumerProbe)
    def handled(self, consumer: str, event_type: str) -> None: ...
    def dead_lettered(self, consumer: str, topic: str, category: str) -> None: ...
    def retried(self, consumer: str, category: str) -> None: ...
    def group_lag(self, consumer: str, records: int) -> None: ...
    # detection
    def duplicate(self, event_type: str) -> None: ...
    def gap_event(self, event_type: str, unit_id: str) -> None: ...
    def published(self, event_type: str, count: int) -> None: ...
    # alerting
    def alert_planned(self, kind: str) -> None: ...
    def delivery_sent(self, channel: str, kind: str, latency_s: float | None) -> None: ...
    def delivery_retried(self, channel: str) -> None: ...
    def delivery_failed(self, channel: str, reason: str) -> None: ...
    def attempt_duration(self, channel: str, seconds: float) -> None: ...
    def open_gaps(self, by_unit: dict[str, tuple[int, float]]) -> None: ...
    def pending_deliveries(self, by_channel: dict[str, tuple[int, float]]) -> None: ...
    def worklist_request(self, action: str, outcome: str) -> None: ...
    def purged(self, what: str, count: int) -> None: ...


class NullProbe:
    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


#: the delivery channels (alert_delivery.channel): their pending gauges are 0, not absent, when none waits
CHANNELS = ("email", "teams")

#: buckets for delivery latency and gap age
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


class PrometheusProbe:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("flk_notifier_events_handled_total", "Consumed events handled", ["event_type"], registry=r)
        self.dlq = Counter("flk_notifier_events_dead_lettered_total", "Consumed events dead-lettered",
                           ["topic", "category"], registry=r)
        self.consumer_retries = Counter("flk_notifier_consumer_retries_total", "Handler retries", ["category"], registry=r)
        self.duplicates = Counter("flk_notifier_events_duplicate_total", "Redelivered events dropped by the inbox",
                                  ["event_type"], registry=r)
        self.gap_events = Counter("flk_notifier_care_gap_events_total", "Care gaps opened/resolved",
                                  ["event_type", "care_unit_id"], registry=r)
        self.published_events = Counter("flk_notifier_outbox_published_total", "Outbox events published",
                                        ["event_type"], registry=r)
        self.planned = Counter("flk_notifier_alerts_planned_total", "Alerts planned", ["kind"], registry=r)
        self.sent = Counter("flk_notifier_alerts_sent_total", "Alert deliveries that succeeded",
                            ["channel", "kind"], registry=r)
        self.retries = Counter("flk_notifier_alert_retries_total", "Failed delivery attempts that will be retried",
                               ["channel"], registry=r)
        self.failed = Counter("flk_notifier_alerts_failed_total", "Deliveries given up", ["channel", "reason"], registry=r)
        self.attempt_seconds = Histogram("flk_notifier_delivery_attempt_seconds", "Duration of one delivery attempt",
                                         ["channel"], buckets=_LATENCY, registry=r)
        self.delivery_latency = Histogram("flk_notifier_alert_delivery_latency_seconds",
                                          "From alert planned to delivered", ["channel"], buckets=_LATENCY, registry=r)
        self.open_gap_count = Gauge("flk_notifier_open_care_gaps", "Open care gaps per unit", ["care_unit_id"], registry=r)
        self.oldest_gap_age = Gauge("flk_notifier_oldest_open_care_gap_age_seconds",
                                    "Age of the oldest open care gap per unit", ["care_unit_id"], registry=r)
        self.pending_count = Gauge("flk_notifier_deliveries_pending", "Alert deliveries not yet delivered or given up",
                                   ["channel"], registry=r)
        self.oldest_pending_age = Gauge(
            "flk_notifier_oldest_pending_delivery_age_seconds",
            "Age (since the alert was planned) of the oldest alert delivery still pending (0 when none)",
            ["channel"], registry=r)
        self.group_lag_records = group_lag_gauge(r)
        self.worklist = Counter("flk_notifier_worklist_requests_total",
                                "Worklist views and actions by outcome (no unit or patient labels)",
                                ["action", "outcome"], registry=r)
        self.purged_rows = Counter("flk_notifier_retention_purged_total",
                                   "Rows purged past the retention: gap_patient_key (forgotten on resolved gaps), "
                                   "care_state (of persons deceased/emigrated), outbox (published)",
                                   ["what"], registry=r)
        self._units: set[str] = set()

    def handled(self, consumer: str, event_type: str) -> None:
        self.events.labels(event_type).inc()

    def dead_lettered(self, consumer: str, topic: str, category: str) -> None:
        self.dlq.labels(topic, category).inc()

    def retried(self, consumer: str, category: str) -> None:
        self.consumer_retries.labels(category).inc()

    def group_lag(self, consumer: str, records: int) -> None:
        self.group_lag_records.labels(consumer).set(records)

    def duplicate(self, event_type: str) -> None:
        self.duplicates.labels(event_type).inc()

    def gap_event(self, event_type: str, unit_id: str) -> None:
        self.gap_events.labels(event_type, unit_id).inc()

    def published(self, event_type: str, count: int) -> None:
        self.published_events.labels(event_type).inc(count)

    def alert_planned(self, kind: str) -> None:
        self.planned.labels(kind).inc()

    def delivery_sent(self, channel: str, kind: str, latency_s: float | None) -> None:
        self.sent.labels(channel, kind).inc()
        if latency_s is not None:
            self.delivery_latency.labels(channel).observe(latency_s)

    def delivery_retried(self, channel: str) -> None:
        self.retries.labels(channel).inc()

    def delivery_failed(self, channel: str, reason: str) -> None:
        self.failed.labels(channel, reason).inc()

    def attempt_duration(self, channel: str, seconds: float) -> None:
        self.attempt_seconds.labels(channel).observe(seconds)

    def open_gaps(self, by_unit: dict[str, tuple[int, float]]) -> None:
        for unit in self._units - set(by_unit):
            self.open_gap_count.labels(unit).set(0)
            self.oldest_gap_age.labels(unit).set(0)
        for unit, (count, age) in by_unit.items():
            self.open_gap_count.labels(unit).set(count)
            self.oldest_gap_age.labels(unit).set(age)
        self._units |= set(by_unit)

    def pending_deliveries(self, by_channel: dict[str, tuple[int, float]]) -> None:
        for channel in CHANNELS:
            count, age = by_channel.get(channel, (0, 0.0))
            self.pending_count.labels(channel).set(count)
            self.oldest_pending_age.labels(channel).set(age)

    def worklist_request(self, action: str, outcome: str) -> None:
        self.worklist.labels(action, outcome).inc()

    def purged(self, what: str, count: int) -> None:
        self.purged_rows.labels(what).inc(count)
