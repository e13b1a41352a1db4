"""Prometheus metrics of the FHIR ingest (prefix ``flk_ingest_``). Labels are bounded enums (outcome,
request kind, HTTP status, event type): never an identifier, a unit or a sender."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: every outcome label value (an Encounter's decision or why it was refused)
OUTCOMES = ("recorded", "replaced", "cancelled", "not_a_contact", "unchanged", "stale", "conflict",
            "refused_invalid", "refused_unreadable", "refused_forbidden", "refused_bundle")


class PrometheusIngestProbe:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        self.encounters_total = Counter(
            "flk_ingest_encounters_total", "Encounters ingested (recorded, replaced, ...) or refused, by outcome",
            ["outcome"], **kw)
        self.requests_total = Counter(
            "flk_ingest_requests_total", "FHIR requests, by kind (encounter, batch, transaction) and HTTP status",
            ["kind", "status"], **kw)
        self.request_seconds = Histogram(
            "flk_ingest_request_seconds", "Time to answer one FHIR request", ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), **kw)
        self.published_total = Counter(
            "flk_ingest_outbox_published_total", "Visit events published to Kafka", ["event_type"], **kw)
        self.pending = Gauge("flk_ingest_outbox_pending", "Outbox rows not yet published", **kw)
        for outcome in OUTCOMES:
            self.encounters_total.labels(outcome)

    def encounters(self, outcome: str, n: int = 1) -> None:
        self.encounters_total.labels(outcome if outcome in OUTCOMES else "other").inc(n)

    def request(self, kind: str, status: int, seconds: float) -> None:
        self.requests_total.labels(kind, str(status)).inc()
        self.request_seconds.labels(kind).observe(seconds)

    def published(self, event_type: str, n: int) -> None:
        self.published_total.labels(event_type).inc(n)

    def outbox_pending(self, n: int) -> None:
        self.pending.set(n)
