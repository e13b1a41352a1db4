"""Prometheus metrics of the listing service (prefix ``flk_listing_``; no patient ids in labels).

Labels are bounded: message type (a contract type), outcome, reason code (an enum), event type.
P3 (guardian consent): the requests open now, those closed by outcome (``listing.consent_closed.v1``'s
enum) and the expiry sweep's runs and expiries — counts only, never a child's or a guardian's key.
"""
from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ListingProbe(Protocol):
    def decided(self, message_type: str, outcome: str, reason_code: str | None, seconds: float) -> None: ...
    def conflict_retried(self, message_type: str) -> None: ...
    def published(self, event_type: str, n: int) -> None: ...
    def outbox_pending(self, n: int) -> None: ...
    def imported(self, outcome: str, n: int) -> None: ...
    def parked(self, message_type: str) -> None: ...
    def released(self, outcome: str) -> None: ...
    def parked_waiting(self, n: int) -> None: ...
    def parked_oldest(self, age_s: float, wait_limit_s: float) -> None: ...
    def consents_pending(self, n: int) -> None: ...
    def consent_closed(self, outcome: str) -> None: ...
    def consent_sweep(self, result: str, expired: int) -> None: ...


class NullListingProbe:
    def decided(self, message_type: str, outcome: str, reason_code: str | None, seconds: float) -> None: ...
    def conflict_retried(self, message_type: str) -> None: ...
    def published(self, event_type: str, n: int) -> None: ...
    def outbox_pending(self, n: int) -> None: ...
    def imported(self, outcome: str, n: int) -> None: ...
    def parked(self, message_type: str) -> None: ...
    def released(self, outcome: str) -> None: ...
    def parked_waiting(self, n: int) -> None: ...
    def parked_oldest(self, age_s: float, wait_limit_s: float) -> None: ...
    def consents_pending(self, n: int) -> None: ...
    def consent_closed(self, outcome: str) -> None: ...
    def consent_sweep(self, result: str, expired: int) -> None: ...


class PrometheusListingProbe:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        kw = {"registry": registry} if registry is not None else {}
        self.messages_total = Counter(
            "flk_listing_messages_total", "Commands and facts handled, by outcome",
            ["message_type", "outcome"], **kw)
        self.rejections_total = Counter(
            "flk_listing_rejections_total", "Rejected commands by reason code", ["reason_code"], **kw)
        self.decision_seconds = Histogram(
            "flk_listing_decision_seconds", "Time to handle one message (one transaction)", ["message_type"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), **kw)
        self.conflicts_total = Counter(
            "flk_listing_conflict_retries_total", "Transactions retried after a serialisation/constraint conflict",
            ["message_type"], **kw)
        self.published_total = Counter(
            "flk_listing_outbox_published_total", "Outbox events published to Kafka", ["event_type"], **kw)
        self.pending = Gauge("flk_listing_outbox_pending", "Outbox rows not yet published", **kw)
        self.imported_total = Counter(
            "flk_listing_import_rows_total", "Rows of listing imports, by outcome", ["outcome"], **kw)
        self.parked_total = Counter(
            "flk_listing_commands_parked_total", "Kafka commands parked to wait for their person",
            ["message_type"], **kw)
        self.released_total = Counter(
            "flk_listing_parked_released_total",
            "Parked commands handed to the handlers: person_known, waited_out (rejected person_unknown), "
            "dead_lettered", ["outcome"], **kw)
        self.waiting = Gauge("flk_listing_parked_commands_waiting", "Kafka commands waiting for their person (parked)",
                             **kw)
        self.parked_oldest_age = Gauge(
            "flk_listing_parked_oldest_age_seconds", "Age of the oldest parked Kafka command (0 when none)", **kw)
        self.parked_wait_limit = Gauge(
            "flk_listing_parked_wait_limit_seconds",
            "How long a parked command waits for its person before it is answered (FLK_LISTING_PERSON_WAIT_S)", **kw)
        self.consent_pending = Gauge(
            "flk_listing_guardian_consent_pending",
            "Minors' listing requests waiting for a guardian's consent (P3), open in the register now", **kw)
        self.consent_closed_total = Counter(
            "flk_listing_guardian_consent_closed_total",
            "Minors' pending listing requests closed, by outcome: consented, rejected, refused, expired, "
            "superseded, cancelled", ["outcome"], **kw)
        self.sweep_runs_total = Counter(
            "flk_listing_consent_expiry_runs_total", "Runs of the P3 consent expiry sweep: ok, failed", ["result"], **kw)
        self.sweep_expired_total = Counter(
            "flk_listing_consent_expired_total", "Pending listing requests the P3 expiry sweep expired", **kw)

    def decided(self, message_type: str, outcome: str, reason_code: str | None, seconds: float) -> None:
        self.messages_total.labels(message_type, outcome).inc()
        if reason_code:
            self.rejections_total.labels(reason_code).inc()
        self.decision_seconds.labels(message_type).observe(seconds)

    def conflict_retried(self, message_type: str) -> None:
        self.conflicts_total.labels(message_type).inc()

    def published(self, event_type: str, n: int) -> None:
        self.published_total.labels(event_type).inc(n)

    def outbox_pending(self, n: int) -> None:
        self.pending.set(n)

    def imported(self, outcome: str, n: int) -> None:
        self.imported_total.labels(outcome).inc(n)

    def parked(self, message_type: str) -> None:
        self.parked_total.labels(message_type).inc()

    def released(self, outcome: str) -> None:
        self.released_total.labels(outcome).inc()

    def parked_waiting(self, n: int) -> None:
        self.waiting.set(n)

    def parked_oldest(self, age_s: float, wait_limit_s: float) -> None:
        self.parked_oldest_age.set(age_s)
        self.parked_wait_limit.set(wait_limit_s)

    def consents_pending(self, n: int) -> None:
        self.consent_pending.set(n)

    def consent_closed(self, outcome: str) -> None:
        self.consent_closed_total.labels(outcome).inc()

    def consent_sweep(self, result: str, expired: int) -> None:
        self.sweep_runs_total.labels(result).inc()
        if expired:
            self.sweep_expired_total.inc(expired)
