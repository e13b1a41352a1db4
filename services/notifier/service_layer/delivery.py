"""Alert delivery: due deliveries are claimed, rendered, sent through a port, and the outcome is
logged in ``notifier.delivery_attempt`` (status code / SMTP reply class, never a body).

A failed attempt is rescheduled with ``plan_retry`` (exponential backoff with jitter; a
``Retry-After`` wins) by setting ``next_attempt_at``: nothing sleeps in a handler. A successful
delivery writes ``alert.delivered`` to the outbox in the same transaction as its log row.
"""
from __future__ import annotations

import asyncio
import logging
import time as monotonic_time
from dataclasses import dataclass, field
from datetime import timedelta

from services.notifier.adapters import alert_store
from services.notifier.adapters.alert_store import AttemptRecord, DeliveryJob
from services.notifier.adapters.clock import Clock
from services.notifier.adapters.metrics import NotifierProbe, NullProbe
from services.notifier.adapters.outbound import alert_delivered_event
from services.notifier.adapters.secrets import SecretStore
from services.notifier.adapters.senders import EmailSender, SendResult, TeamsSender
from services.notifier.domain.messages import PatientIdentifierLeak, render_email, render_teams_card
from services.notifier.domain.retry import Disposition, RetryPolicy, plan_retry

log = logging.getLogger(__name__)


class MissingSecret(Exception):
    """The Teams webhook secret is not in the secret store (a configuration error: not retried)."""


@dataclass
class DeliveryWorker:
    pool: object
    clock: Clock
    email: EmailSender
    teams: TeamsSender
    secrets: SecretStore
    worklist_url: object  # Callable[[str], str]
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    probe: NotifierProbe = field(default_factory=NullProbe)
    lease: timedelta = timedelta(minutes=2)
    concurrency: int = 16
    message_domain: str = "flk.notifier"
    on_delivered: object = lambda: None  # Callable[[], None]: wakes the relay

    async def run_due(self) -> int:
        """Claim and attempt every due delivery (in batches); the number attempted."""
        total = 0
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(job: DeliveryJob) -> None:
            async with semaphore:
                await self.attempt(job)

        while True:
            now = self.clock.now()
            async with self.pool.acquire() as conn:
                async with conn.transaction():
                    jobs = await alert_store.claim_due_deliveries(conn, now, now + self.lease, self.concurrency * 4)
            if not jobs:
                return total
            await asyncio.gather(*(one(j) for j in jobs))
            total += len(jobs)

    async def attempt(self, job: DeliveryJob) -> AttemptRecord:
        attempt = job.attempts + 1
        started = self.clock.now()
        t0 = monotonic_time.monotonic()
        result: SendResult | None = None
        outcome: int | BaseException
        try:
            result = await self._send(job)
            outcome = result.outcome
        except Exception as exc:  # noqa: BLE001 - classified below, logged by type only
            outcome = exc
        finished = self.clock.now()
        self.probe.attempt_duration(job.channel, monotonic_time.monotonic() - t0)

        retry_after = result.retry_after if result else None
        plan = plan_retry(attempt, outcome, retry_after, finished, self.retry_policy)
        error_type = type(outcome).__name__ if isinstance(outcome, BaseException) else None
        smtp_code = result.smtp_code if result else getattr(outcome, "code", None) if job.channel == "email" else None
        if not isinstance(smtp_code, int):
            smtp_code = None
        http_status = result.http_status if result else None
        if plan.disposition is Disposition.SUCCEEDED:
            rec = AttemptRecord(job, attempt, started, finished, "delivered", http_status, smtp_code)
            delivered = alert_delivered_event(str(job.alert_id), job.unit_id, job.channel, job.kind.value,
                                              job.gap_count, attempt, finished)
        elif plan.disposition is Disposition.RETRY:
            assert plan.delay is not None
            rec = AttemptRecord(job, attempt, started, finished, "retry", http_status, smtp_code, error_type,
                                retry_after, finished + plan.delay, plan.reason)
            delivered = None
        else:
            rec = AttemptRecord(job, attempt, started, finished, "failed", http_status, smtp_code, error_type,
                                retry_after, None, _give_up_reason(outcome, plan.reason))
            delivered = None

        async with self.pool.acquire() as conn:
            async with conn.transaction():
                recorded = await alert_store.record_attempt(conn, rec, delivered)
        if not recorded:
            log.warning("delivery %s attempt %d was recorded by another worker", job.delivery_id, attempt)
            return rec
        if rec.outcome == "delivered":
            self.probe.delivery_sent(job.channel, job.kind.value, (finished - job.planned_at).total_seconds())
            self.on_delivered()
        elif rec.outcome == "retry":
            self.probe.delivery_retried(job.channel)
            log.info("delivery %s (%s) attempt %d failed (%s); retry at %s", job.delivery_id, job.channel,
                     attempt, error_type or http_status, rec.next_attempt_at)
        else:
            self.probe.delivery_failed(job.channel, rec.reason or "permanent")
            log.error("delivery %s (%s) gave up after attempt %d: %s", job.delivery_id, job.channel, attempt,
                      rec.reason)
        return rec

    async def _send(self, job: DeliveryJob) -> SendResult:
        alert = job.alert()
        url = self.worklist_url(job.unit_id)
        if job.channel == "email":
            email = render_email(alert, job.summary, url)
            return await self.email.send(email, message_id=f"<{job.alert_id}.email@{self.message_domain}>")
        if job.channel == "teams":
            assert job.secret_ref is not None
            webhook = self.secrets.get(job.secret_ref)
            if webhook is None:
                raise MissingSecret(job.secret_ref)
            card = render_teams_card(alert, job.summary, url)
            return await self.teams.post(webhook, card, idempotency_key=f"{job.alert_id}:teams")
        raise ValueError(f"unknown channel {job.channel}")


def _give_up_reason(outcome: int | BaseException, reason: str) -> str:
    if isinstance(outcome, MissingSecret):
        return "secret_missing"
    if isinstance(outcome, PatientIdentifierLeak):
        return "identifier_leak"
    return reason
