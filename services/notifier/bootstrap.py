"""The composition root: every port is a parameter; `NotifierRuntime` runs the loops.

Loops (each supervised: an error is logged and the loop goes on after a pause, never dies):
* consumer — EventConsumer over the consumed topics -> CareGapDetection.handle
* relay    — outbox -> Kafka, woken after every commit that wrote the outbox
* ticker   — Tick(now) for patients whose next_wakeup passed
* planner  — plans units whose gaps changed (after a short batching window) and sweeps all
             routed units periodically (digests, escalations, the end of quiet hours)
* delivery — attempts due deliveries, woken when alerts are queued
* metrics  — refreshes the per-unit open-gap gauges
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flk.events.acls import KafkaUse
from flk.events.consumer import ConsumerSettings, EventConsumer, KeyedEventConsumer
from flk.events.lag import report_group_lag
from flk.events.outbox import OutboxRelay
from flk.events.registry import registry
from flk.tasks import Wakeup, stop_tasks, supervised_task
from services.notifier.adapters import alert_store, retention
from services.notifier.adapters.retention import Purged
from services.notifier.adapters.clock import Clock, SystemClock
from services.notifier.adapters.inbound import CONSUMED_EVENT_TYPES, FactMapper
from services.notifier.adapters.metrics import NotifierProbe, PrometheusProbe
from services.notifier.adapters.secrets import SecretStore, secret_store_from_settings
from services.notifier.adapters.senders import EmailSender, HttpxTeamsSender, SmtpEmailSender, TeamsSender
from services.notifier.service_layer.alerting import AlertPlanner
from services.notifier.service_layer.delivery import DeliveryWorker
from services.notifier.service_layer.detection import CareGapDetection
from services.notifier.adapters.relay import notifier_relay
from services.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)
#: how long a shutdown waits for the Kafka consumer to leave its group
STOP_TIMEOUT_S = 15.0


def consumed_topics() -> tuple[str, ...]:
    return registry().topics_carrying(CONSUMED_EVENT_TYPES)


def kafka_use(settings: NotifierSettings) -> KafkaUse:
    """What the notifier does on Kafka (its ACLs, `flk kafka acls`)."""
    return KafkaUse("notifier", consumes=CONSUMED_EVENT_TYPES, groups=(settings.consumer_group,))


@dataclass
class NotifierRuntime:
    settings: NotifierSettings
    pool: object
    producer: object
    clock: Clock
    email: EmailSender
    teams: TeamsSender
    secrets: SecretStore
    probe: NotifierProbe
    detection: CareGapDetection = field(init=False)
    relay: OutboxRelay = field(init=False)
    planner: AlertPlanner = field(init=False)
    delivery: DeliveryWorker = field(init=False)
    consumer: EventConsumer | None = field(init=False, default=None)
    _tasks: list[asyncio.Task] = field(init=False, default_factory=list)
    _dirty_units: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        s = self.settings
        self._relay_wake = Wakeup()
        self._planner_wake = Wakeup()
        self._delivery_wake = Wakeup()
        self._sweep_now = Wakeup()
        self._tick_wake = Wakeup()
        self.detection = CareGapDetection(self.pool, self.clock, s.care_policy, FactMapper(s.timezone), self.probe,
                                          on_change=self._gaps_changed)
        self.relay = notifier_relay(self.pool, self.producer, self.clock, s.source, s.platform.topic_prefix,
                                   probe=self.probe)
        self.planner = AlertPlanner(self.pool, self.clock, self.probe, on_planned=self._delivery_wake)
        self.delivery = DeliveryWorker(self.pool, self.clock, self.email, self.teams, self.secrets, s.worklist_url,
                                       s.retry_policy, self.probe, timedelta(seconds=s.delivery_lease_s),
                                       s.delivery_concurrency, on_delivered=self._relay_wake)

    # ---- signals -------------------------------------------------------------------------------

    def _gaps_changed(self, units: set[str]) -> None:
        self._dirty_units |= units
        self._planner_wake()
        self._relay_wake()

    def poke(self) -> None:
        """Run every periodic step now (tests move the clock, then poke)."""
        self._tick_wake()
        self._sweep_now()
        self._planner_wake()
        self._delivery_wake()
        self._relay_wake()

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, *, consume: bool = True) -> None:
        s = self.settings
        if consume:
            self.consumer = KeyedEventConsumer(
                ConsumerSettings(
                    bootstrap=s.platform.kafka_bootstrap, group_id=s.platform.topic_prefix + s.consumer_group,
                    topics=consumed_topics(), name="notifier", topic_prefix=s.platform.topic_prefix,
                    connection=s.platform.kafka_connection(),
                    group_instance_id=s.platform.replica_name,
                ),
                handle=self.detection.handle, dlq_producer=self.producer, probe=self.probe,
                concurrency=s.consumer_concurrency,  # patients at once; one patient's facts in order
                # one transaction per chunk of a poll; a failing chunk falls back to `handle` per message
                batch_handler=self.detection.handle_batch, batch_size=s.consumer_batch_size,
            )
            await self.consumer.start()
            self._spawn("consumer-lag", lambda: report_group_lag(
                s.platform.kafka_bootstrap, {"notifier": s.platform.topic_prefix + s.consumer_group},
                self.probe.group_lag, s.platform.kafka_connection()))
            self._spawn("consumer", self.consumer.run)
        self._spawn("relay", self._relay_loop)
        self._spawn("ticker", self._tick_loop)
        self._spawn("planner", self._planner_loop)
        self._spawn("delivery", self._delivery_loop)
        self._spawn("metrics", self._metrics_loop)
        if self.settings.retention_days > 0:
            self._spawn("retention", self._retention_loop)

    async def stop(self) -> None:
        """Stop the loops first (the consumer's among them: its batch in progress is not committed and
        comes again after a restart, which the inbox makes harmless), then the Kafka consumer. Stopping
        the consumer while its loop still polled or committed could hang the shutdown (seen in CI)."""
        await stop_tasks(self._tasks, log, STOP_TIMEOUT_S)
        self._tasks.clear()
        if self.consumer is not None:
            try:
                await asyncio.wait_for(self.consumer.stop(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("the Kafka consumer did not stop within %s s; leaving it to the session timeout",
                            STOP_TIMEOUT_S)

    def _spawn(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(supervised_task(f"notifier-{name}", body, log))

    # ---- loops -----------------------------------------------------------------------------------

    async def _relay_loop(self) -> None:
        while True:
            await self.relay.publish_all()
            await self._relay_wake.wait(self.settings.relay_interval_s)

    async def _tick_loop(self) -> None:
        while True:
            await self.detection.tick_due()
            await self._tick_wake.wait(self.settings.tick_interval_s)

    async def _planner_loop(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            if self._sweep_now.event.is_set() or loop.time() >= next_sweep:
                self._sweep_now.event.clear()
                earliest = await self.planner.plan_all()
                next_sweep = loop.time() + _until(earliest, self.clock.now(), s.plan_interval_s)
            if self._dirty_units:
                await asyncio.sleep(s.immediate_batch_window_s)  # gather a batch of new gaps
                units, self._dirty_units = self._dirty_units, set()
                await self.planner.plan_units(sorted(units))
                continue
            await self._planner_wake.wait(max(0.0, min(next_sweep - loop.time(), s.plan_interval_s)))

    async def _delivery_loop(self) -> None:
        while True:
            await self.delivery.run_due()
            await self._delivery_wake.wait(self.settings.delivery_poll_s)

    async def _metrics_loop(self) -> None:
        while True:
            async with self.pool.acquire() as conn:
                stats = await alert_store.open_gap_stats(conn)
                pending = await alert_store.pending_delivery_stats(conn)
            now = self.clock.now()
            self.probe.open_gaps({u: (n, max(0.0, (now - oldest).total_seconds())) for u, (n, oldest) in stats.items()})
            self.probe.pending_deliveries({c: (n, max(0.0, (now - oldest).total_seconds()))
                                           for c, (n, oldest) in pending.items()})
            await asyncio.sleep(self.settings.metrics_refresh_s)


    async def purge_expired(self) -> Purged:
        """One purge: per-patient data older than ``retention_days`` (adapters/retention.py)."""
        cut_off = self.clock.now() - timedelta(days=self.settings.retention_days)
        async with self.pool.acquire() as conn:
            purged = await retention.purge(conn, cut_off)
        for what, n in (("gap_patient_key", purged.gaps_forgotten), ("care_state", purged.states_deleted),
                        ("outbox", purged.outbox_deleted)):
            if n:
                self.probe.purged(what, n)
        if purged.gaps_forgotten or purged.states_deleted or purged.outbox_deleted:
            log.info("notifier retention (%d days): %d resolved gaps forgot their patient, %d care states and "
                     "%d published outbox rows deleted", self.settings.retention_days, purged.gaps_forgotten,
                     purged.states_deleted, purged.outbox_deleted)
        return purged

    async def _retention_loop(self) -> None:
        while True:
            await self.purge_expired()
            await asyncio.sleep(self.settings.retention_interval_s)


def _until(moment: datetime | None, now: datetime, cap: float) -> float:
    if moment is None:
        return cap
    return max(0.0, min(cap, (moment - now).total_seconds()))


def build_runtime(
    settings: NotifierSettings,
    pool: object,
    producer: object,
    *,
    clock: Clock | None = None,
    email: EmailSender | None = None,
    teams: TeamsSender | None = None,
    secrets: SecretStore | None = None,
    probe: NotifierProbe | None = None,
) -> NotifierRuntime:
    """Wire the runtime; every port defaults to its production adapter."""
    s = settings
    return NotifierRuntime(
        settings=s,
        pool=pool,
        producer=producer,
        clock=clock or SystemClock(),
        email=email or SmtpEmailSender(
            s.smtp_host, s.smtp_port, s.smtp_from, tls=s.smtp_tls, username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None, timeout_s=s.smtp_timeout_s,
        ),
        teams=teams or HttpxTeamsSender(timeout_s=s.teams_timeout_s),
        secrets=secrets or secret_store_from_settings(s.secrets_dir),
        probe=probe or PrometheusProbe(),
    )
