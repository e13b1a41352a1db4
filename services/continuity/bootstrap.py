"""The continuity worker: stream processor + HTTP API + metrics + daily timer + snapshots, one process.

Consumption is batch-wise (aiokafka ``getmany``), not per event: see docs/adr/0001 for why the
hot path does not iterate a faust stream (faust's per-event iteration alone caps below the
10 000 events/s target on this hardware). The semantics follow the faust pitfalls list:
one consumer task (no concurrency), every failure of a message dead-lettered and the
consumer goes on, state replaced (never mutated in place), the tables partitioned exactly as
the inputs, idempotent handlers, and short session timeouts.

Order of effects per batch: publish indices events and dead letters (await acks) → commit
the state writes and next offsets to the local table atomically → commit the group offsets
(for lag monitoring; positions come from the table). A crash anywhere replays the batch,
which changes nothing (visit ids deduplicated; same event ids for the same indices).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import date

from flk.events.acls import KafkaUse
from flk.events.dlq import send_to_dlq
from flk.events.producer import new_producer
from flk.events.registry import registry
from flk.events.lag import report_group_lag
from flk.tasks import stop_tasks
from services.continuity.adapters.unit_register import UNIT_FACT, UnitRegisterReader
from services.continuity.adapters.metrics import Probe
from services.continuity.adapters.store import PatientStore, open_store
from services.continuity.service_layer.handlers import CONSUMED_EVENT_TYPES
from services.continuity.service_layer.processor import BatchOutcome, Processor
from services.continuity.settings import ContinuityServiceSettings

log = logging.getLogger("flk.continuity.worker")
CONSUMER_NAME = "continuity-worker"


def input_topics() -> tuple[str, ...]:
    return registry().topics_carrying(CONSUMED_EVENT_TYPES)


def kafka_use(settings: ContinuityServiceSettings) -> KafkaUse:
    """What the worker does on Kafka (its ACLs, `flk kafka acls`): consumes its inputs in its group,
    follows the unit register without a group, writes what the registry says it writes."""
    return KafkaUse("continuity", consumes=CONSUMED_EVENT_TYPES, follows=(UNIT_FACT,), groups=(settings.group_id,))


class ContinuityWorker:
    def __init__(self, settings: ContinuityServiceSettings, store: PatientStore | None = None) -> None:
        self.settings = settings
        self.prefix = settings.platform.topic_prefix
        self.store = store or open_store(settings.store, settings.data_dir)
        self.processor = Processor(settings.measure(), self.store, settings.today(), topic_prefix=self.prefix,
                                   region_id=settings.region_id)
        self.probe = Probe()
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.consumer = None
        self.producer = None
        self.tasks: list[asyncio.Task] = []
        self.processed_events = 0  # read by the bench and tests
        self._needs_refresh: set[int] = set()
        self._server = None
        self._pool = None
        self._snapshot_written_at = time.time()
        self.unit_register: UnitRegisterReader | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        s = self.settings
        worker = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                async with worker.lock:
                    for p in {tp.partition for tp in revoked}:
                        worker.processor.close_partition(p)
                        worker._needs_refresh.discard(p)

            async def on_partitions_assigned(self, assigned):
                async with worker.lock:
                    for p in sorted({tp.partition for tp in assigned}):
                        worker.store.open(p)
                        offsets = worker.store.offsets(p)
                        worker._needs_refresh.add(p)
                        for tp in assigned:
                            if tp.partition == p:
                                worker.consumer.seek(tp, offsets.get(tp.topic[len(worker.prefix):], 0))

        connection = s.platform.kafka_connection()
        # the unit register first (filials, seed 004): every patient's indices depend on it
        self.unit_register = UnitRegisterReader(s.platform.kafka_bootstrap, self.prefix, connection.client_options(),
                                                client_id=s.client_id + "-units")
        self.processor.set_unit_families(await self.unit_register.start())
        self.producer = new_producer(s.platform.kafka_bootstrap, s.client_id, connection)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.platform.kafka_bootstrap,
            group_id=self.prefix + s.group_id,
            client_id=s.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_records=s.batch_max_records,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # co-partitioning: partition p of every input lands on the same worker
            partition_assignment_strategy=(RangePartitionAssignor,),
            **connection.client_options(),
        )
        self.consumer.subscribe([self.prefix + t for t in input_topics()], listener=Listener())
        await self.consumer.start()
        self.probe.as_of(self.processor.as_of)
        self.tasks.append(asyncio.create_task(self._consume(), name="continuity-consume"))
        self.tasks.append(asyncio.create_task(self._timer(), name="continuity-timer"))
        self.tasks.append(asyncio.create_task(self._follow_unit_register(), name="continuity-unit-register"))
        self.tasks.append(asyncio.create_task(report_group_lag(
            s.platform.kafka_bootstrap, {"continuity": self.prefix + s.group_id}, self.probe.group_lag, connection),
            name="continuity-group-lag"))
        if s.snapshot_enabled:
            # staleness counts from the start until the first snapshot (the alert rule's input)
            self._snapshot_written_at = time.time()
            self.probe.snapshots_every(s.snapshot_interval_s, lambda: self._snapshot_written_at)
            self.tasks.append(asyncio.create_task(self._snapshots(), name="continuity-snapshots"))
        if s.api_enabled:
            await self._start_api()
        if s.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(s.metrics_port, addr=s.http_host, registry=self.probe.registry)
        log.info("continuity worker started (store %s, as of %s)", s.store, self.processor.as_of)

    async def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        await stop_tasks(self.tasks, log)
        self.tasks.clear()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.unit_register is not None:
            await self.unit_register.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self._pool is not None:
            await self._pool.close()
        self.store.close_all()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.start()
        try:
            await self.stopping.wait()
        finally:
            await self.stop()

    async def _start_api(self) -> None:
        import uvicorn

        from services.continuity.entrypoints.api import create_app

        class Server(uvicorn.Server):
            def capture_signals(self):  # the worker handles signals itself
                import contextlib

                return contextlib.nullcontext()

        config = uvicorn.Config(create_app(self.settings, self.processor, metrics=self.probe.registry), host=self.settings.http_host,
                                port=self.settings.http_port, log_level="warning", lifespan="on")
        self._server = Server(config)
        self.tasks.append(asyncio.create_task(self._server.serve(), name="continuity-api"))

    # ------------------------------------------------------------------ the loop

    async def _consume(self) -> None:
        s = self.settings
        while not self.stopping.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=s.batch_timeout_ms or 100,
                                                      max_records=s.batch_max_records)
                async with self.lock:
                    await self._refresh_pending()
                    records = [r for part in batches.values() for r in part]
                    if records:
                        out = self.processor.process(records)
                        await self._emit(out)
                        self._commit_store(out)
                        self.processed_events += out.events
                        self.probe.processed(out.processed)
                        self.probe.batch(out.events, out.seconds)
                if records:
                    await self._commit_group()
                    self._report_lag(batches)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - broker trouble: wait and go on (the batch is replayed)
                log.exception("continuity batch failed; retrying from the stored offsets")
                await asyncio.sleep(1.0)
                await self._rewind()

    async def _follow_unit_register(self) -> None:
        """A changed filial relation changes which visits count at a listing unit: every patient is
        recomputed (at the next batch), as when the date moves."""
        while not self.stopping.is_set():
            try:
                changed = await self.unit_register.poll(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - broker trouble: try again
                log.exception("reading the unit register failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if changed:
                async with self.lock:
                    if self.processor.set_unit_families(self.unit_register.families):
                        self._needs_refresh.update(self.store.partitions)
                log.info("unit register: %d filial(s) known; every patient is recomputed",
                         len(self.unit_register.families))

    async def _refresh_pending(self) -> None:
        while self._needs_refresh:
            p = self._needs_refresh.pop()
            self.processor.summaries.setdefault(p, {})
            self.processor.sizes.setdefault(p, {})
            out = self.processor.refresh_partition(p)
            await self._emit(out)
            self._commit_store(out)

    async def _rewind(self) -> None:
        async with self.lock:
            for tp in self.consumer.assignment():
                if tp.partition in self.store.partitions:
                    self.consumer.seek(tp, self.store.offsets(tp.partition).get(tp.topic[len(self.prefix):], 0))

    async def _emit(self, out: BatchOutcome) -> None:
        futures = [await self.producer.send(self.prefix + r.topic, value=r.value, key=r.key, headers=r.headers)
                   for r in out.outgoing]
        for item in out.dead:
            await send_to_dlq(self.producer, item.message, item.reason, CONSUMER_NAME)
            self.probe.dead_lettered(item.message.topic[len(self.prefix):], item.category)
            log.warning("dead-lettered %s[%d]@%d: %s", item.message.topic, item.message.partition,
                        item.message.offset, item.reason)
        for f in futures:
            await f
        self.probe.changed(len(out.outgoing))

    def _commit_store(self, out: BatchOutcome) -> None:
        for p in set(out.writes) | set(out.offsets):
            if p in self.store.partitions:
                self.store.commit(p, out.writes.get(p, {}), out.offsets.get(p, {}))

    async def _commit_group(self) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError

        try:
            await self.consumer.commit()
        except (CommitFailedError, IllegalStateError) as exc:  # a rebalance: positions live in the tables
            log.info("group offset commit skipped: %s", exc)

    def _report_lag(self, batches) -> None:
        for tp in batches:
            try:
                highwater = self.consumer.highwater(tp)
                position = self.consumer._subscription.subscription.assignment.state_value(tp).position
            except Exception:  # noqa: BLE001
                continue
            if highwater is not None and position is not None:
                self.probe.lag(tp.topic[len(self.prefix):], tp.partition, max(highwater - position, 0))

    # ------------------------------------------------------------------ time

    async def _timer(self) -> None:
        """Daily advance: when the date moves, every patient is pruned and recomputed (no replay)."""
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.advance_interval_s)
            today = self.settings.today()
            if today <= self.processor.as_of:
                continue
            await self.advance_to(today)

    async def advance_to(self, day: date) -> None:
        started = time.perf_counter()
        async with self.lock:
            self.processor.as_of = day
            for p in sorted(self.store.partitions):
                out = self.processor.refresh_partition(p)
                await self._emit(out)
                self._commit_store(out)
        self.probe.as_of(day)
        self.probe.advanced(time.perf_counter() - started)
        log.info("advanced every patient to %s", day)

    async def snapshot_now(self) -> bool:
        """Write the snapshot of the current *as of* day; False when this state cannot give it (it
        already holds facts dated after that day: see ``processor.KNOWN_UNTIL``)."""
        from flk.api import open_pool
        from services.continuity.adapters.snapshots import write_snapshot

        if self._pool is None:
            self._pool = await open_pool(self.settings.platform, min_size=1, max_size=2)
        started = time.perf_counter()
        async with self.lock:
            day = self.processor.as_of
            known = self.processor.known_until()
            # facts dated after today are planned ones (a switch of unit that starts tomorrow): known
            # today, so they do not make today's state a later one
            if known is not None and min(known, self.settings.calendar_today()) > day:
                # a re-run over topics that already hold later facts: this state is not the state of
                # `day` (later listings, FLKs, visits, residences), so a snapshot written from it would not
                # be that day's figures. The stored snapshot of `day` (if any) stands.
                log.warning("no snapshot of %s written: the state already holds facts dated up to %s", day, known)
                self.probe.snapshot_declined()
                return False
            rows = self.processor.aggregates()
            patients = self.processor.patient_rows()
        await write_snapshot(self._pool, day, rows, region_code=self.settings.region_id,
                             window_months=self.settings.window_months, patients=patients)
        self.probe.snapshot_written(time.perf_counter() - started)
        self._snapshot_written_at = time.time()
        self.probe.tables(*self.processor.table_size())
        return True

    async def _snapshots(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.snapshot_interval_s)
            try:
                await self.snapshot_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be down; the next round retries
                log.exception("continuity snapshot failed")


def run_worker(settings: ContinuityServiceSettings) -> None:
    from flk.service import configure_logging

    configure_logging()
    asyncio.run(ContinuityWorker(settings).run_forever())
