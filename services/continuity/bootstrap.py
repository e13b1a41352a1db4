"""The continuity worker: stream processor + HTTP API + metrics + daily timer + snapshots, one process.

Consumption is batch-wise (aiokafka ``getmany``), not per event: see docs/adr/0001 for why the
hot path does not iterate a faust stream (faust's per-event iteration alone caps below the
10 000 events/s target on this hardware). The semantics follow the faust pitfalls list:
one consumer task (no concurrency), every failure of a message dead-lettered and the
consumer goes on, state replaced (never mutated in place), the tables partitioned exactly as
the inputs, idempotent handlers, and short session timeouts.

Several replicas share the partitions (one consumer group, range assignment, so partition p of
every input lands on the same replica). With ``FLK_REPLICA_NAME`` set the replica is a static
member (``group_instance_id``): restarted within the session timeout it gets its own partitions
back without a rebalance. The API serves a patient only while this replica owns the patient's
partition under a live lease (the last heartbeat the broker accepted, plus the session timeout):
a replica that was paused past its session answers 404 for what it lost, even before it learns
of the rebalance (see ``ServedIndices``).

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

from flk.events.dlq import send_to_dlq
from flk.events.producer import new_producer
from flk.events.registry import registry
from flk.events.lag import report_group_lag
from flk.tasks import stop_tasks
from services.continuity.adapters.unit_register import UnitRegisterReader
from services.continuity.adapters.metrics import Probe
from services.continuity.adapters.store import PatientStore, open_store
from services.continuity.service_layer.handlers import CONSUMED_EVENT_TYPES
from services.continuity.service_layer.processor import BatchOutcome, Processor
from services.continuity.settings import ContinuityServiceSettings

log = logging.getLogger("flk.continuity.worker")
CONSUMER_NAME = "continuity-worker"


def input_topics() -> tuple[str, ...]:
    return registry().topics_carrying(CONSUMED_EVENT_TYPES)


#: a snapshot of an unchanged state is rewritten after this many intervals (a reader waiting for a
#: snapshot written after some moment, as the main job does at each snapshot date, gets one)
UNCHANGED_REWRITE_INTERVALS = 5


class NotServedHere(LookupError):
    """The patient's partition is not (or no longer) this replica's: another replica serves it."""

    def __init__(self, partition: int) -> None:
        super().__init__(partition)
        self.partition = partition


def partition_of(patient_key: str, partitions: int | None = None) -> int:
    """The partition of a patient's events (the producers' partitioner, flk/events/partitioner.py)."""
    from flk.events.partitioner import default_partitioner

    every = list(range(partitions or registry().patient_partitions))
    return default_partitioner(patient_key.encode(), every, every)


class Ownership:
    """Which partitions this replica may answer for, and until when.

    Assigned partitions are added by the rebalance listener and removed when revoked. Whatever the
    listener has not heard yet, the lease bounds: the broker keeps a member's partitions only while
    its heartbeats arrive, so a replica owns them for at most ``session_timeout`` after the last
    heartbeat (or join) the broker accepted. A replica paused past that (SIGSTOP, a long GC, a
    frozen VM) has lost them, whatever its listener still believes, until it has rejoined."""

    def __init__(self, session_timeout_s: float, clock=time.monotonic) -> None:
        self.session_timeout_s = session_timeout_s
        self.clock = clock
        self.partitions: set[int] = set()
        self._lease_until = float("-inf")

    def confirmed(self, sent_at: float) -> None:
        """The broker accepted a heartbeat or a join sent at ``sent_at`` (this clock)."""
        self._lease_until = max(self._lease_until, sent_at + self.session_timeout_s)

    def assigned(self, partitions, sent_at: float | None = None) -> None:
        """The group gave these partitions (a join the broker accepted): served from now on."""
        self.confirmed(self.clock() if sent_at is None else sent_at)
        self.add(partitions)

    def add(self, partitions) -> None:
        """Served from now on, under the lease the last join or heartbeat gave (e.g. once restored)."""
        self.partitions |= set(partitions)

    def revoked(self, partitions) -> None:
        self.partitions -= set(partitions)

    def lost(self) -> None:
        self.partitions.clear()
        self._lease_until = float("-inf")

    def serves(self, partition: int) -> bool:
        return partition in self.partitions and self.clock() < self._lease_until


class ServedIndices:
    """The API's view of the worker's tables: only the partitions this replica owns right now."""

    def __init__(self, processor: Processor, ownership: Ownership, partitions: int) -> None:
        self._processor = processor
        self._ownership = ownership
        self._partitions = partitions

    @property
    def as_of(self):
        return self._processor.as_of

    def known_until(self):
        return self._processor.known_until()

    def partition_of(self, patient_key: str) -> int:
        return partition_of(patient_key, self._partitions)

    def patient(self, patient_key: str):
        p = self.partition_of(patient_key)
        if not self._ownership.serves(p):
            raise NotServedHere(p)
        return self._processor.patient(patient_key)

    def unit_aggregates(self, unit_id: str):
        return self._processor.unit_aggregates(unit_id)

    def served_partitions(self) -> list[int]:
        return sorted(p for p in self._ownership.partitions if self._ownership.serves(p))


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
        self._refreshes = 0  # partitions refreshed (restart, a new day, the unit register): state changed
        self._snapshot_of: tuple | None = None  # the state version the last written snapshot is of
        self._snapshot_checked = time.monotonic()  # when a snapshot was last written or found current
        self.unit_register: UnitRegisterReader | None = None
        self.ownership = Ownership(settings.session_timeout_ms / 1000)
        self.served = ServedIndices(self.processor, self.ownership, registry().patient_partitions)
        self.rebalances = 0  # assignments received (read by the tests; also logged)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor

        s = self.settings
        worker = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                worker.ownership.revoked({tp.partition for tp in revoked})  # before the lock: stop serving now
                async with worker.lock:
                    for p in {tp.partition for tp in revoked}:
                        worker.processor.close_partition(p)
                        worker._needs_refresh.discard(p)

            async def on_partitions_assigned(self, assigned):
                worker.rebalances += 1
                log.info("partitions assigned: %s (assignment %d)",
                         sorted({tp.partition for tp in assigned}), worker.rebalances)
                async with worker.lock:
                    for p in sorted({tp.partition for tp in assigned}):
                        worker.store.open(p)
                        offsets = worker.store.offsets(p)
                        worker._needs_refresh.add(p)
                        for tp in assigned:
                            if tp.partition == p:
                                worker.consumer.seek(tp, offsets.get(tp.topic[len(worker.prefix):], 0))
                    worker.ownership.assigned({tp.partition for tp in assigned})

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
            # static membership: a restarted replica gets its partitions back without a rebalance
            group_instance_id=s.platform.replica_name,
            **connection.client_options(),
        )
        self.consumer.subscribe([self.prefix + t for t in input_topics()], listener=Listener())
        await self.consumer.start()
        self._watch_heartbeats()
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

    def _watch_heartbeats(self) -> None:
        """Every heartbeat the broker accepts renews the ownership lease (see ``Ownership``).

        aiokafka has no public hook for it: its group coordinator's ``_do_heartbeat`` (True when the
        broker accepted the heartbeat, or answered that a rebalance is in progress: the member keeps
        its partitions until it rejoins) is wrapped on this consumer's instance only. Without a
        coordinator (a consumer without a group) nothing is wrapped and the lease never renews."""
        coordinator = getattr(self.consumer, "_coordinator", None)
        beat = getattr(coordinator, "_do_heartbeat", None)
        if beat is None:
            log.warning("no group coordinator to watch: this replica's API will serve no patient")
            return
        ownership = self.ownership

        async def heartbeat_watched():
            sent_at = ownership.clock()
            ok = await beat()
            if ok:
                ownership.confirmed(sent_at)
            return ok

        coordinator._do_heartbeat = heartbeat_watched

    async def stop(self) -> None:
        self.stopping.set()
        self.ownership.lost()
        if self._server is not None:
            # let uvicorn end its lifespan itself: cancelling it mid-shutdown logged a CancelledError
            # traceback from the lifespan on every SIGTERM
            self._server.should_exit = True
            api = next((t for t in self.tasks if t.get_name() == "continuity-api"), None)
            if api is not None:
                await asyncio.wait({api}, timeout=10.0)
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

        config = uvicorn.Config(create_app(self.settings, self.served, metrics=self.probe.registry), host=self.settings.http_host,
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
            self._refreshes += 1

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
                self._refreshes += 1
        self.probe.as_of(day)
        self.probe.advanced(time.perf_counter() - started)
        log.info("advanced every patient to %s", day)

    async def snapshot_now(self) -> bool:
        """Write the snapshot of the current *as of* day; False when this state cannot give it (it
        already holds facts dated after that day: see ``processor.KNOWN_UNTIL``; or it holds only some
        of the partitions, as one replica among several does)."""
        from flk.api import open_pool
        from services.continuity.adapters.snapshots import write_snapshot

        if self._pool is None:
            self._pool = await open_pool(self.settings.platform, min_size=1, max_size=2)
        started = time.perf_counter()
        async with self.lock:
            day = self.processor.as_of
            held, every = len(self.store.partitions), registry().patient_partitions
            if held < every:
                # one replica among several: its partitions' patients are part of the region, and a
                # snapshot replaces the whole day's rows. The region's figures come from a worker that
                # holds every partition (its own consumer group: docs/operations.md, "Scaling out")
                log.warning("no snapshot of %s written: this replica holds %d of the %d partitions", day, held, every)
                self.probe.snapshot_declined()
                return False
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
            version = self._state_version()
        await write_snapshot(self._pool, day, rows, region_code=self.settings.region_id,
                             window_months=self.settings.window_months, patients=patients)
        self.probe.snapshot_written(time.perf_counter() - started)
        self._snapshot_written_at = time.time()
        self._snapshot_of, self._snapshot_checked = version, time.monotonic()
        self.probe.tables(*self.processor.table_size())
        return True

    def _state_version(self) -> tuple:
        """Changes whenever the state a snapshot is computed from may have changed."""
        return self.processed_events, self.processor.as_of, self._refreshes

    def _lagging(self) -> bool:
        """The consumer has records to read on an assigned partition (as of its last fetch)."""
        consumer = self.consumer
        if consumer is None:
            return False
        for tp in consumer.assignment():
            try:
                highwater = consumer.highwater(tp)
                position = consumer._subscription.subscription.assignment.state_value(tp).position
            except Exception:  # noqa: BLE001 - not fetched yet
                continue
            if highwater is not None and position is not None and highwater > position:
                return True
        return False

    def snapshot_due(self, now: float) -> bool:
        """Whether the periodic snapshot is written now. Not while the worker catches up (a backlog half
        read is no day's figure, and rewriting every patient's row each interval of a replay was most of
        the worker's CPU in the main job), unless it waited ``snapshot_max_defer_s``; not when nothing
        changed since the last one (it is still the state's snapshot; its age counts from now), unless
        it is five intervals old (the day's row is then rewritten as before)."""
        s = self.settings
        since = now - self._snapshot_checked
        if self._lagging() and since < (s.snapshot_max_defer_s or 2 * s.snapshot_interval_s):
            return False
        if self._snapshot_of is not None and self._snapshot_of == self._state_version() \
                and since < UNCHANGED_REWRITE_INTERVALS * s.snapshot_interval_s:
            self._snapshot_written_at = time.time()  # the stored snapshot is the state's: not stale
            return False
        return True

    async def _snapshots(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.snapshot_interval_s)
            if not self.snapshot_due(time.monotonic()):
                continue
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
