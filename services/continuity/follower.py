"""A serving replica: follows the continuity worker's changelog and serves what it committed.

The worker (group ``continuity``) is the one that processes the inputs and writes the patients'
changelog, the ``indices_changed`` events and the snapshots, in one transaction per partition and
batch (docs/adr/0008). A serving replica (``FLK_CONTINUITY_FOLLOW_CHANGELOG=true``, its own group,
e.g. ``continuity.replicas``) reads no input and writes nothing: its consumer group splits the
changelog's partitions among the serving replicas (static membership with ``FLK_REPLICA_NAME``), each
copies its partitions' committed records (``read_committed``) into its local table and answers for
them through the same API. So what it serves is always a state the worker committed — the same
bytes the worker's table holds — and the last event per patient on the output topic came from the
same transaction. Two groups that both processed the inputs would both write the one changelog and
the one output topic, which must not happen.

A partition is served (``Ownership.add``) once the local table has caught up with the changelog's
end as it was at the assignment, and only under the lease of the last heartbeat the broker
accepted (``bootstrap.Ownership``), as on a worker.
"""
from __future__ import annotations

import asyncio
import logging

from flk.collector import BatchCollector
from services.continuity.adapters.changelog import table_writes
from services.continuity.adapters.metrics import Probe
from services.continuity.adapters.store import CHANGELOG_POSITION, PatientStore, open_store
from services.continuity.adapters.unit_register import UnitRegisterReader
from services.continuity.bootstrap import (
    Ownership, ServedIndices, changelog_topic, read_today, run_until_signalled, start_api, stop_api_and_tasks,
    wait_for_advance, watch_heartbeats,
)
from services.continuity.service_layer.processor import Processor
from services.continuity.settings import ContinuityServiceSettings
from flk.events.registry import registry

log = logging.getLogger("flk.continuity.follower")


class FollowedIndices(ServedIndices):
    """A serving replica's view: its partitions' patients; no unit aggregates (a unit's patients are in
    every partition, and a replica holds some; the worker and the snapshots have them)."""

    def unit_aggregates(self, unit_id: str):
        raise LookupError(unit_id)


class ChangelogFollower:
    def __init__(self, settings: ContinuityServiceSettings, store: PatientStore | None = None) -> None:
        self.settings = settings
        self.prefix = settings.platform.topic_prefix
        self.store = store or open_store(settings.store, settings.data_dir)
        # computes a patient's indices from the stored record (as of today), never processes an event
        self.processor = Processor(settings.measure(), self.store, settings.today(), topic_prefix=self.prefix,
                                   region_id=settings.region_id)
        self.probe = Probe()
        self.ownership = Ownership(settings.session_timeout_ms / 1000)
        self.served = FollowedIndices(self.processor, self.ownership, registry().patient_partitions)
        self.stopping = asyncio.Event()
        self._advance_requested = asyncio.Event()  # `request_advance` (SIGUSR2)
        self.collector = BatchCollector()
        self.consumer = None
        self.unit_register: UnitRegisterReader | None = None
        self.tasks: list[asyncio.Task] = []
        self.rebalances = 0
        self.followed_records = 0
        self._catching_up: dict[int, int] = {}  # partition -> the changelog's end at its assignment
        self._server = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        s = self.settings
        follower = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                partitions = {tp.partition for tp in revoked}
                follower.ownership.revoked(partitions)
                for p in partitions:
                    follower._catching_up.pop(p, None)
                    follower.processor.close_partition(p)

            async def on_partitions_assigned(self, assigned):
                follower.rebalances += 1
                log.info("changelog partitions assigned: %s (assignment %d)",
                         sorted(tp.partition for tp in assigned), follower.rebalances)
                ends = await follower.consumer.end_offsets(list(assigned)) if assigned else {}
                for tp in assigned:
                    follower.store.open(tp.partition)
                    position = follower.store.offsets(tp.partition).get(CHANGELOG_POSITION, 0)
                    follower.consumer.seek(tp, position)
                    follower._catching_up[tp.partition] = ends[tp]
                follower.ownership.assigned(set())
                follower._serve_caught_up(
                    {tp.partition: follower.store.offsets(tp.partition).get(CHANGELOG_POSITION, 0) for tp in assigned})

        connection = s.platform.kafka_connection()
        self.unit_register = UnitRegisterReader(s.platform.kafka_bootstrap, self.prefix, connection.client_options(),
                                                client_id=s.client_id + "-units")
        self.processor.set_unit_families(await self.unit_register.start())
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.platform.kafka_bootstrap, group_id=self.prefix + s.group_id, client_id=s.client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            session_timeout_ms=s.session_timeout_ms, heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_records=s.batch_max_records, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024, group_instance_id=s.platform.replica_name,
            **connection.client_options())
        self.consumer.subscribe([self.prefix + changelog_topic()], listener=Listener())
        await self.consumer.start()
        watch_heartbeats(self.consumer, self.ownership, log)
        self.probe.as_of(self.processor.as_of)
        self.tasks.append(asyncio.create_task(self._follow(), name="continuity-follow"))
        self.tasks.append(asyncio.create_task(self._follow_unit_register(), name="continuity-unit-register"))
        self.tasks.append(asyncio.create_task(self._timer(), name="continuity-timer"))
        if s.api_enabled:
            self._server = await start_api(self.settings, self.served, self.probe, self.tasks)
        log.info("continuity serving replica started (follows the changelog; store %s, as of %s)",
                 s.store, self.processor.as_of)

    def _serve_caught_up(self, positions: dict[int, int]) -> None:
        for p, position in positions.items():
            end = self._catching_up.get(p)
            if end is not None and position >= end:
                del self._catching_up[p]
                self.ownership.add({p})

    async def _follow(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.collector.batch():  # the cyclic collector between batches (flk.collector)
                    batches = await self.consumer.getmany(timeout_ms=200,
                                                          max_records=self.settings.batch_max_records)
                    for tp, records in batches.items():
                        if not records or tp.partition not in self.store.partitions:
                            continue
                        writes, offsets = table_writes(records)
                        offsets[CHANGELOG_POSITION] = records[-1].offset + 1
                        self.store.commit(tp.partition, writes, offsets)
                        self.followed_records += len(records)
                # the consumer's position is past what was read and past the transactions' markers
                self._serve_caught_up({p: await self._position(p) for p in list(self._catching_up)})
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - broker trouble: wait and go on (positions are in the tables)
                log.exception("following the changelog failed; retrying")
                await asyncio.sleep(1.0)

    async def _position(self, partition: int) -> int:
        for tp in self.consumer.assignment():
            if tp.partition == partition:
                return await self.consumer.position(tp)
        return -1

    async def _follow_unit_register(self) -> None:
        while not self.stopping.is_set():
            try:
                if await self.unit_register.poll(timeout_ms=1000):
                    self.processor.set_unit_families(self.unit_register.families)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("reading the unit register failed; retrying")
                await asyncio.sleep(1.0)

    def request_advance(self) -> None:
        """Look at the clock now, not at the next interval (SIGUSR2: a replay moved its clock file)."""
        self._advance_requested.set()

    async def _timer(self) -> None:
        """The indices are computed as of today: a new day moves *as of* (the worker rewrites the records)."""
        while not self.stopping.is_set():
            await wait_for_advance(self._advance_requested, self.settings.advance_interval_s)
            self._advance_requested.clear()
            today = read_today(self.settings)
            if today is not None and today > self.processor.as_of:
                self.processor.as_of = today
                self.probe.as_of(today)

    async def stop(self) -> None:
        self.stopping.set()
        self.ownership.lost()
        await stop_api_and_tasks(self._server, self.tasks)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.unit_register is not None:
            await self.unit_register.stop()
        self.store.close_all()

    async def run_forever(self) -> None:
        await run_until_signalled(self)
