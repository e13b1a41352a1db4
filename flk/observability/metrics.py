"""Prometheus metrics shared by every service (prefix ``flk_``; base units; no patient ids in labels).

Labels are bounded sets only: consumer name, event type, topic, failure category, channel,
care unit HSA-id. A patient key or person id is never a label value.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flk.events.consumer import ConsumerProbe


class PrometheusConsumerProbe(ConsumerProbe):
    """The shared consumer loop's metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kwargs = {"registry": registry} if registry is not None else {}
        self.handled_total = Counter(
            "flk_events_handled_total", "Events handled by a consumer", ["consumer", "event_type"], **kwargs)
        self.dead_lettered_total = Counter(
            "flk_events_dead_lettered_total", "Messages written to a dead-letter topic",
            ["consumer", "topic", "category"], **kwargs)
        self.retried_total = Counter(
            "flk_events_retried_total", "Handler retries (transient: a dependency was down; error: a bug)",
            ["consumer", "category"], **kwargs)
        self.handle_seconds = Histogram(
            "flk_event_handle_seconds", "Time to handle one event", ["consumer"], **kwargs)
        self.group_lag_records = group_lag_gauge(registry)

    def handled(self, consumer: str, event_type: str) -> None:
        self.handled_total.labels(consumer, event_type).inc()

    def dead_lettered(self, consumer: str, topic: str, category: str) -> None:
        self.dead_lettered_total.labels(consumer, topic, category).inc()

    def retried(self, consumer: str, category: str) -> None:
        self.retried_total.labels(consumer, category).inc()

    def group_lag(self, consumer: str, records: int) -> None:
        self.group_lag_records.labels(consumer).set(records)


def group_lag_gauge(registry: CollectorRegistry | None = None) -> Gauge:
    """``flk_consumer_group_lag_records{group}``: the records a consumer group has not committed yet (the
    group label is the consumer's name, without the topic prefix). Read by the ConsumerLagGrowing alert."""
    kwargs = {"registry": registry} if registry is not None else {}
    return Gauge("flk_consumer_group_lag_records", "Records a consumer group has not committed yet (from the broker)",
                 ["group"], **kwargs)
