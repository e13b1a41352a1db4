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

Order of effects per batch and partition (docs/adr/0008): one Kafka transaction of the partition's
transactional producer holds the changed records and next input offsets (changelog topic), the
indices events and dead letters, and the group offsets → then the same writes, offsets and changelog
position go to the local table atomically. A crash before the commit aborts the transaction (the batch
is replayed); a crash after it leaves the local table behind its changelog, which it catches up from
before it processes input. A partition new to a replica is restored from its changelog (its local
table if current, else the changelog from the table's position), never replayed from the visit topic.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import date

from flk.collector import BatchCollector
from flk.events.acls import KafkaUse
from flk.events.consumer import StreamPace, gather_fast_stream
from flk.events.dlq import send_to_dlq
from flk.events.producer import init_transactions, send_in_batches, transactional_producer
from flk.events.registry import registry
from flk.events.lag import report_group_lag
from flk.tasks import stop_tasks
from services.continuity.adapters.unit_register import UNIT_FACT, UnitRegisterReader
from services.continuity.adapters.metrics import Probe
from services.continuity.adapters.changelog import (
    offset_record,
    restore,
    transactional_id,
    transactional_id_prefix,
)
from services.continuity.adapters.store import CHANGELOG_POSITION, PatientStore, open_store
from services.continuity.service_layer.handlers import CONSUMED_EVENT_TYPES
from services.continuity.service_layer.processor import BatchOutcome, Processor
from services.continuity.service_layer.record import is_empty_record
from services.continuity.settings import SERVING_REPLICA_GROUP, ContinuityServiceSettings

log = logging.getLogger("flk.continuity.worker")
CONSUMER_NAME = "continuity-worker"


def input_topics() -> tuple[str, ...]:
    return registry().topics_carrying(CONSUMED_EVENT_TYPES)


def changelog_topic() -> str:
    return registry().changelog("continuity", "patients").name


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


def kafka_use(settings: ContinuityServiceSettings) -> KafkaUse:
    """What the worker does on Kafka (its ACLs, `flk kafka acls`): consumes its inputs in its group,
    follows the unit register without a group, writes (and restores from) what the registry says it
    writes, and one transactional id per partition (adapters/changelog.transactional_id)."""
    # the serving replicas (follower.py) run under the same principal and read the changelog in their group
    groups = tuple(dict.fromkeys((settings.group_id, SERVING_REPLICA_GROUP)))
    return KafkaUse("continuity", consumes=CONSUMED_EVENT_TYPES, follows=(UNIT_FACT,), groups=groups,
                    transactional_id_prefixes=(transactional_id_prefix("", settings.group_id),))


def watch_heartbeats(consumer, ownership: Ownership, logger: logging.Logger) -> None:
    """Every heartbeat the broker accepts renews the ownership lease (see ``Ownership``).

    aiokafka has no public hook for it: its group coordinator's ``_do_heartbeat`` (True when the
    broker accepted the heartbeat, or answered that a rebalance is in progress: the member keeps
    its partitions until it rejoins) is wrapped on this consumer's instance only. Without a
    coordinator (a consumer without a group) nothing is wrapped and the lease never renews."""
    coordinator = getattr(consumer, "_coordinator", None)
    beat = getattr(coordinator, "_do_heartbeat", None)
    if beat is None:
        logger.warning("no group coordinator to watch: this replica's API will serve no patient")
        return

    async def heartbeat_watched():
        sent_at = ownership.clock()
        ok = await beat()
        if ok:
            ownership.confirmed(sent_at)
        return ok

    coordinator._do_heartbeat = heartbeat_watched


async def start_api(settings: ContinuityServiceSettings, served: ServedIndices, probe: Probe, tasks: list):
    """The API (uvicorn) as a task of ``tasks``; the process handles signals itself. Returns the server."""
    import contextlib

    import uvicorn

    from services.continuity.entrypoints.api import create_app

    class Server(uvicorn.Server):
        def capture_signals(self):
            return contextlib.nullcontext()

    config = uvicorn.Config(create_app(settings, served, metrics=probe.registry), host=settings.http_host,
                            port=settings.http_port, log_level="warning", lifespan="on")
    server = Server(config)
    tasks.append(asyncio.create_task(server.serve(), name="continuity-api"))
    return server


async def stop_api_and_tasks(server, tasks: list) -> None:
    """Stop the API, then the other tasks. uvicorn ends its lifespan itself: cancelling it mid-shutdown
    logged a CancelledError traceback from the lifespan on every SIGTERM."""
    if server is not None:
        server.should_exit = True
        api = next((t for t in tasks if t.get_name() == "continuity-api"), None)
        if api is not None:
            await asyncio.wait({api}, timeout=10.0)
    await stop_tasks(tasks, log)
    tasks.clear()


def _no_snapshot_here() -> None:
    log.warning("snapshot requested (SIGUSR1), but this process writes none (a serving replica)")


def _no_clock_here() -> None:
    log.warning("a look at the clock requested (SIGUSR2), but this process keeps no day")


async def wait_for_advance(requested: asyncio.Event, interval_s: float) -> None:
    """Until ``interval_s`` has passed or a look at the clock is asked for (SIGUSR2), whichever is first
    (the caller takes the request: clears ``requested``)."""
    try:
        await asyncio.wait_for(requested.wait(), interval_s)
    except asyncio.TimeoutError:
        pass


def read_today(settings: ContinuityServiceSettings) -> date | None:
    """``settings.today()``; None (logged) while a replay's clock file cannot be read: the day stays."""
    try:
        return settings.today()
    except (OSError, ValueError) as exc:
        log.warning("the replay clock %s gives no date (%s); the day stays", settings.as_of_file, exc)
        return None


async def run_until_signalled(process) -> None:
    """``process.start()``, then ``process.stop()`` at SIGTERM/SIGINT (which set ``process.stopping``);
    SIGUSR1 asks a processing worker for its snapshot now (`ContinuityWorker.request_snapshot`), SIGUSR2 any
    process to look at its clock now (``request_advance``)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, process.stopping.set)
    # SIGUSR1: the snapshot now (a serving replica writes none: it logs so, and is not stopped by it)
    loop.add_signal_handler(signal.SIGUSR1, getattr(process, "request_snapshot", _no_snapshot_here))
    # SIGUSR2: look at the clock now (a replay moved the day in its clock file, ``as_of_file``)
    loop.add_signal_handler(signal.SIGUSR2, getattr(process, "request_advance", _no_clock_here))
    await process.start()
    try:
        await process.stopping.wait()
    finally:
        await process.stop()


def _changelog_records(writes: dict[bytes, bytes | None], offsets: dict[str, int]):
    """A batch's changelog records: each written (or deleted: None) patient, then each input offset."""
    for key, value in writes.items():
        yield key, value, None
    for topic, offset in offsets.items():
        key, value = offset_record(topic, offset)
        yield key, value, None


class ContinuityWorker:
    def __init__(self, settings: ContinuityServiceSettings, store: PatientStore | None = None) -> None:
        self.settings = settings
        self.prefix = settings.platform.topic_prefix
        self.store = store or open_store(settings.store, settings.data_dir)
        self.processor = Processor(settings.measure(), self.store, settings.today(), topic_prefix=self.prefix,
                                   region_id=settings.region_id, compiled=settings.compiled_hot_path)
        self.probe = Probe()
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.consumer = None
        self.restorer = None  # reads the changelog (no group, read_committed)
        #: partition -> its transactional producer (docs/adr/0008), while this replica owns it
        self.producers: dict[int, object] = {}
        self._needs_restore: set[int] = set()
        self.restored_records = 0  # changelog records read by restores (tests, the bench)
        self.failed_transactions = 0  # (tests) batches whose transaction failed: restored and replayed
        self._failures_in_a_row = 0  # backoff before a failed partition is retried
        self.tasks: list[asyncio.Task] = []
        self.processed_events = 0  # read by the bench and tests
        self._needs_refresh: set[int] = set()
        self._server = None
        self._pool = None
        self._snapshot_written_at = time.time()
        self.collector = BatchCollector()
        self._refreshes = 0  # partitions refreshed (restart, a new day, the unit register): state changed
        self._pace = StreamPace()  # records received in the last second: a fast stream waits for fuller batches
        self._snapshot_of: tuple | None = None  # the state version the last written snapshot is of
        self._snapshot_checked = time.monotonic()  # when a snapshot was last written or found current
        #: set by `request_snapshot` (SIGUSR1): the snapshot loop writes one at once
        self._snapshot_requested = asyncio.Event()
        self._advance_requested = asyncio.Event()  # `request_advance` (SIGUSR2)
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
                        await worker._drop_partition(p)

            async def on_partitions_assigned(self, assigned):
                worker.rebalances += 1
                log.info("partitions assigned: %s (assignment %d)",
                         sorted({tp.partition for tp in assigned}), worker.rebalances)
                # restored (fence, changelog, seek) by the loop, which then resumes them and serves them
                # (Ownership.add) under the lease this join gave
                async with worker.lock:
                    if assigned:
                        worker.consumer.pause(*assigned)
                    worker._needs_restore.update(tp.partition for tp in assigned)
                    worker.ownership.assigned(set())

        connection = s.platform.kafka_connection()
        # the unit register first (filials, seed 004): every patient's indices depend on it
        self.unit_register = UnitRegisterReader(s.platform.kafka_bootstrap, self.prefix, connection.client_options(),
                                                client_id=s.client_id + "-units")
        self.processor.set_unit_families(await self.unit_register.start())
        self.restorer = AIOKafkaConsumer(
            bootstrap_servers=s.platform.kafka_bootstrap, group_id=None, client_id=s.client_id + "-restore",
            enable_auto_commit=False, isolation_level="read_committed",
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
            **connection.client_options())
        await self.restorer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.platform.kafka_bootstrap,
            group_id=self.prefix + s.group_id,
            client_id=s.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
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
        watch_heartbeats(self.consumer, self.ownership, log)
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
        log.info("continuity worker started (store %s, as of %s; hot path: %s)", s.store, self.processor.as_of,
                 self.processor.hot_path)

    async def stop(self) -> None:
        self.stopping.set()
        self.ownership.lost()
        await stop_api_and_tasks(self._server, self.tasks)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.unit_register is not None:
            await self.unit_register.stop()
        for p in list(self.producers):
            await self._stop_producer(p)
        if self.restorer is not None:
            await self.restorer.stop()
        if self._pool is not None:
            await self._pool.close()
        self.store.close_all()

    async def run_forever(self) -> None:
        await run_until_signalled(self)

    async def _start_api(self) -> None:
        self._server = await start_api(self.settings, self.served, self.probe, self.tasks)

    # ------------------------------------------------------------------ the loop

    async def _consume(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.collector.batch():
                    await self._consume_batch()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - broker trouble: wait and go on (the batch is replayed)
                log.exception("continuity batch failed; its partitions are restored and replayed")
                await asyncio.sleep(1.0)
                await self._rewind()

    async def _consume_batch(self) -> None:
        """One batch: fetched, processed and committed (the cyclic collector runs after it: flk.collector)."""
        s = self.settings
        batches = await self.consumer.getmany(timeout_ms=s.batch_timeout_ms or 100,
                                              max_records=s.batch_max_records)
        batches = await gather_fast_stream(self.consumer, batches, self._pace, linger_ms=s.batch_linger_ms,
                                           from_per_second=s.batch_linger_from_per_second,
                                           max_records=s.batch_max_records, below_records=s.batch_linger_below_records)
        async with self.lock:
            self._take_clock()
            restored = await self._restore_pending()
            await self._refresh_pending()
            by_partition: dict[int, list] = {}
            for tp, part in batches.items():
                # a partition restored just now was seeked to its table's offsets: records fetched
                # before that are fetched again from there
                if part and tp.partition in self.producers and tp.partition not in restored:
                    by_partition.setdefault(tp.partition, []).extend(part)
            if by_partition:
                # one transaction per partition (its producer): processed apart, committed together
                outs = {p: self.processor.process(records) for p, records in by_partition.items()}
                committed = await self._commit_all(outs)
                for out in (outs[p] for p in committed):
                    self.processed_events += out.events
                    self.probe.processed(out.processed)
                    self.probe.batch(out.events, out.seconds)
        if batches:
            self._report_lag(batches)

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
        refreshed = False
        while self._needs_refresh:
            p = self._needs_refresh.pop()
            if p not in self.producers:
                continue  # revoked meanwhile, or waiting for its restore
            self.processor.summaries.setdefault(p, {})
            self.processor.sizes.setdefault(p, {})
            started = time.perf_counter()
            await self._commit_all({p: self.processor.refresh_partition(p)})
            self.probe.refreshed(time.perf_counter() - started)
            self._refreshes += 1
            refreshed = True
        if refreshed:
            # what lives on (the app, the summaries of every patient just refreshed) leaves the cyclic
            # collector's scans: a full collection scanned them all, a pause of tens of ms in the latency
            # tail at 20 000 patients (bench.py: p99 221-263 -> 107-126 ms). Summaries are replaced, and
            # freed by their reference count; unfreezing first lets each refresh collect any frozen cycle.
            self.collector.refreeze()

    # ------------------------------------------------------------------ partitions: restore, commit, drop

    async def _restore_pending(self) -> set[int]:
        """Fence each newly assigned partition's previous writer (its transactional producer, whose open
        transaction is aborted), bring its local table to the end of its changelog, seek its inputs to
        the table's offsets and resume them. Called under the lock."""
        owned = {tp.partition for tp in self.consumer.assignment()}
        self._needs_restore &= owned
        if not self._needs_restore:
            return set()
        started = time.perf_counter()
        partitions = sorted(self._needs_restore)
        unpositioned = []
        for p in partitions:
            if p not in self.producers:
                self.producers[p] = await self._new_producer(p)
            self.store.open(p)
            if CHANGELOG_POSITION not in self.store.offsets(p):
                unpositioned.append(p)
        read = await restore(self.restorer, self.store, self.prefix + changelog_topic(), partitions)
        self.restored_records += sum(read.values())
        for p in unpositioned:
            if not read[p]:
                await self._seed_changelog(p)
        for p in partitions:
            offsets = self.store.offsets(p)
            self.processor.summaries[p] = {}
            self.processor.sizes[p] = {}
            tps = [tp for tp in self.consumer.assignment() if tp.partition == p]
            for tp in tps:
                self.consumer.seek(tp, offsets.get(tp.topic[len(self.prefix):], 0))
            self.consumer.resume(*tps)
            self._needs_refresh.add(p)
            self._needs_restore.discard(p)
            self.ownership.add({p})
        self.probe.restored(sum(read.values()), time.perf_counter() - started)
        log.info("restored partition(s) %s: %d changelog record(s) read in %.2fs", partitions,
                 sum(read.values()), time.perf_counter() - started)
        return set(partitions)

    async def _seed_changelog(self, p: int, chunk: int = 10_000) -> None:
        """A table written before its changelog existed (an upgrade from docs/adr/0006), whose changelog
        partition is empty: copy it to the changelog (in transactions of ``chunk`` records), so that it
        is recoverable before the visit topic's retention deletes old visits."""
        offsets = {k: v for k, v in self.store.offsets(p).items() if k != CHANGELOG_POSITION}
        items = list(self.store.items(p))
        if not items and not offsets:
            return
        changelog = self.prefix + changelog_topic()
        producer = self.producers[p]
        records = list(_changelog_records(dict(items), offsets))
        position = 0
        for start in range(0, len(records), chunk):
            await producer.begin_transaction()
            try:
                for f, count in await send_in_batches(producer, changelog, p, records[start:start + chunk]):
                    position = (await f).offset + count
                await producer.commit_transaction()
            except BaseException:
                await self._abort(p, producer)
                raise
        self.store.commit(p, {}, {CHANGELOG_POSITION: position})
        log.info("partition %d: its table (%d patients) copied to the empty changelog", p, len(items))

    async def _new_producer(self, partition: int):
        s = self.settings
        producer = transactional_producer(
            s.platform.kafka_bootstrap, f"{s.client_id}-p{partition}",
            transactional_id(self.prefix, s.group_id, partition), s.platform.kafka_connection(),
            transaction_timeout_ms=s.transaction_timeout_ms)
        await producer.start()
        try:
            await init_transactions(producer)
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def _stop_producer(self, partition: int) -> None:
        producer = self.producers.pop(partition, None)
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 10.0)
            except Exception as exc:  # noqa: BLE001 - a fenced or broken producer may not stop cleanly
                log.info("partition %d: its producer did not stop cleanly (%s)", partition, type(exc).__name__)

    async def _drop_partition(self, partition: int) -> None:
        """Forget a partition (revoked, or its transaction failed): close its table, stop its producer."""
        self.ownership.revoked({partition})
        self.processor.close_partition(partition)
        self._needs_refresh.discard(partition)
        self._needs_restore.discard(partition)
        await self._stop_producer(partition)

    async def _rewind(self) -> None:
        """After a failed batch: every owned partition is restored (its table catches up with what its
        changelog committed) and replayed from the table's offsets."""
        async with self.lock:
            assigned = list(self.consumer.assignment())
            for p in {tp.partition for tp in assigned}:
                await self._drop_partition(p)
            if assigned:
                self.consumer.pause(*assigned)
            self._needs_restore.update(tp.partition for tp in assigned)

    async def _commit_all(self, outs: dict[int, BatchOutcome]) -> list[int]:
        """Commit each partition's outcome (its transaction, then its local table); the partitions whose
        transaction failed are dropped and restored (their batch is replayed). Called under the lock.
        Returns the partitions committed (or with nothing to commit)."""
        empty = [p for p, out in outs.items()
                 if not (out.writes.get(p) or out.offsets.get(p) or out.outgoing or out.dead)]
        outs = {p: out for p, out in outs.items() if p not in empty}
        if not outs:
            return empty
        results = await asyncio.gather(*(self._commit(p, out) for p, out in outs.items()), return_exceptions=True)
        failed = []
        for (p, out), result in zip(outs.items(), results):
            if isinstance(result, BaseException):
                failed.append(p)
                log.warning("partition %d: its transaction failed (%s: %s); restoring it", p,
                            type(result).__name__, result)
                continue
            writes, offsets = result
            self.store.commit(p, writes, offsets)
            self.probe.changed(len(out.outgoing))
        for p in failed:
            await self._drop_partition(p)
            tps = [tp for tp in self.consumer.assignment() if tp.partition == p]
            if tps:
                self.consumer.pause(*tps)
                self._needs_restore.add(p)
        self.failed_transactions += len(failed)
        if failed:  # the broker refuses or is away: do not spin (the lock is held: nothing else runs)
            self._failures_in_a_row += 1
            await asyncio.sleep(min(0.05 * 2 ** self._failures_in_a_row, 5.0))
        else:
            self._failures_in_a_row = 0
        return empty + [p for p in outs if p not in failed]

    async def _commit(self, p: int, out: BatchOutcome) -> tuple[dict[bytes, bytes | None], dict[str, int]]:
        """One partition's batch in one transaction; the local table's (writes, offsets) to commit after it.
        A patient left with nothing worth keeping is deleted (a tombstone; ``record.is_empty_record``)."""
        producer = self.producers[p]
        changelog = self.prefix + changelog_topic()
        writes: dict[bytes, bytes | None] = dict(out.writes.get(p, {}))
        for key, value in writes.items():
            if value is not None and is_empty_record(value):
                writes[key] = None
                self.processor.summaries.get(p, {}).pop(key, None)
                self.processor.sizes.get(p, {}).pop(key, None)
        offsets = dict(out.offsets.get(p, {}))
        await producer.begin_transaction()
        try:
            # the changelog records (the table's writes, then its offsets), in record batches
            futures = await send_in_batches(producer, changelog, p, _changelog_records(writes, offsets))
            # the events: a patient's input partition is its partition on every patient topic (the registry's
            # patient topics share one partition count, and the inputs are partitioned by patient key)
            by_topic: dict[str, list] = {}
            for r in out.outgoing:
                by_topic.setdefault(r.topic, []).append((r.key, r.value, r.headers))
            events = [future for topic, records in by_topic.items()
                      for future, _ in await send_in_batches(producer, self.prefix + topic, p, records)]
            for item in out.dead:
                await send_to_dlq(producer, item.message, item.reason, CONSUMER_NAME)
                self.probe.dead_lettered(item.message.topic[len(self.prefix):], item.category)
                log.warning("dead-lettered %s[%d]@%d: %s", item.message.topic, item.message.partition,
                            item.message.offset, item.reason)
            group = self._group_offsets(p, offsets)
            if group:
                await producer.send_offsets_to_transaction(group, self.prefix + self.settings.group_id)
            position = None
            for f, count in futures:
                position = (await f).offset + count
            for f in events:  # a refused event fails the batch (the transaction would not commit it)
                await f
            await producer.commit_transaction()
        except BaseException:
            await self._abort(p, producer)
            raise
        if position is not None:
            offsets[CHANGELOG_POSITION] = position
        return writes, offsets

    def _group_offsets(self, p: int, offsets: dict[str, int]) -> dict:
        from aiokafka import TopicPartition

        return {TopicPartition(self.prefix + topic, p): offset for topic, offset in offsets.items()
                if not topic.startswith("@")}

    @staticmethod
    async def _abort(p: int, producer) -> None:
        try:
            await asyncio.wait_for(producer.abort_transaction(), 10.0)
        except Exception as exc:  # noqa: BLE001 - fenced, or the broker is away: the next owner aborts it
            log.info("partition %d: its transaction was not aborted here (%s)", p, type(exc).__name__)

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

    def request_advance(self) -> None:
        """Look at the clock now, not at the next interval (SIGUSR2: a replay moved its clock file)."""
        self._advance_requested.set()

    def _move_with_the_clock(self) -> None:
        """(under the lock) If the clock's day moved forward, *as of* moves to it and every patient is to be
        recomputed as of it (``_refresh_pending``: before the next batch — an idle worker's consume loop
        comes round every ``batch_timeout_ms`` — and before a snapshot), as after a restart."""
        self._advance_requested.clear()
        day = read_today(self.settings)
        if day is None or day <= self.processor.as_of:
            return
        self.processor.as_of = day
        self._needs_refresh.update(p for p in self.store.partitions if p in self.producers)
        self.probe.as_of(day)
        log.info("moved to %s: every patient is recomputed before the next batch", day)

    def _take_clock(self) -> None:
        """(under the lock, before a batch) A look at the clock asked for (SIGUSR2) and not yet taken is taken
        first: the records a replay publishes after moving its clock are processed as of the new day."""
        if self._advance_requested.is_set():
            self._move_with_the_clock()

    async def _timer(self) -> None:
        """Daily advance: when the date moves, every patient is pruned and recomputed at once (no replay;
        ``flk_continuity_advance_seconds``). A look asked for (SIGUSR2: a replay moved its clock) is taken
        at once, and its patients are recomputed by the batch path, as after a restart."""
        while not self.stopping.is_set():
            await wait_for_advance(self._advance_requested, self.settings.advance_interval_s)
            async with self.lock:
                if self._advance_requested.is_set():
                    self._move_with_the_clock()
                    continue
                day = read_today(self.settings)
                if day is not None and day > self.processor.as_of:
                    await self._advance_locked(day)

    async def advance_to(self, day: date) -> None:
        async with self.lock:
            await self._advance_locked(day)

    async def _advance_locked(self, day: date) -> None:
        started = time.perf_counter()
        self.processor.as_of = day
        partitions = [p for p in sorted(self.store.partitions) if p in self.producers]
        await self._commit_all({p: self.processor.refresh_partition(p) for p in partitions})
        self._refreshes += len(partitions)
        self._needs_refresh.difference_update(partitions)
        self.collector.refreeze()  # every patient's new summary: out of the collector's scans (_refresh_pending)
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
            await self._refresh_pending()  # a day just moved to: every patient as of it first
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

    def request_snapshot(self) -> None:
        """Write the snapshot now, not at the next interval (SIGUSR1: ``run_until_signalled``). The main job
        asks for it once every consumer has caught up at a snapshot date, so the worker does not rewrite
        every patient's row at each short interval of a replay; an operator can ask for it after a
        backfill. Written as `snapshot_now` writes it: not if this state cannot give that day's figures."""
        if not self.settings.snapshot_enabled:
            log.warning("snapshot requested (SIGUSR1), but snapshots are off (FLK_CONTINUITY_SNAPSHOT_ENABLED)")
            return
        self._snapshot_requested.set()

    async def _snapshots(self) -> None:
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self._snapshot_requested.wait(), self.settings.snapshot_interval_s)
            except asyncio.TimeoutError:
                pass
            requested = self._snapshot_requested.is_set()
            self._snapshot_requested.clear()
            if not requested and not self.snapshot_due(time.monotonic()):
                continue
            if requested:
                log.info("snapshot requested: writing it now")
            try:
                await self.snapshot_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be down; the next round retries
                log.exception("continuity snapshot failed")


def run_worker(settings: ContinuityServiceSettings) -> None:
    from flk.service import configure_logging

    configure_logging()
    if settings.follow_changelog:  # a serving replica
        from services.continuity.follower import ChangelogFollower

        asyncio.run(ChangelogFollower(settings).run_forever())
    else:
        asyncio.run(ContinuityWorker(settings).run_forever())
