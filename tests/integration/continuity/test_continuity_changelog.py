"""The patient tables' changelog (docs/adr/0008): the recovery source instead of the visit topic."""
from __future__ import annotations

import subprocess
import uuid
import sys
from datetime import date

import orjson
import pytest

from flk.events.admin import delete_topics_with_prefix, ensure_topics
from flk.events.envelope import read_record
from services.continuity.adapters.store import CHANGELOG_POSITION, MemoryStore
from services.continuity.service_layer.record import decode_record
from tests.support.builders import UNIT_A, a_patient_key

from changelog_support import (
    VISITS_TOPIC, changelog_table, delete_all_records, indices_events, log_start_offsets,
    served, served_by,
)
from continuity_stream import (
    AS_OF, DOCTOR_2, eventually, flk_assigned, listing, publish, running_worker, service_settings, visit, write_csvs,
)

pytestmark = pytest.mark.integration

DOCTORS = ["SE2321000016-L001", DOCTOR_2, "SE2321000016-L003"]


def some_visits(patients: list[str], per_patient: int, start: int = 0) -> list:
    return [visit(p, f"v{start + n}-{i}", practitioner=DOCTORS[(i + n) % 3],
                  when=f"2026-0{1 + n % 2}-{10 + n % 15:02d}T09:30:00Z")
            for i, p in enumerate(patients) for n in range(start, start + per_patient)]


async def wait_processed(worker, count: int, timeout_s: float = 30.0) -> None:
    await eventually(lambda: worker.processed_events >= count, timeout_s=timeout_s)


async def test_a_replica_with_no_local_state_restores_its_partitions_from_the_changelog_and_continues_exactly(
        kafka_bootstrap, topic_prefix, producer):
    patients = [a_patient_key(5000 + i) for i in range(60)]
    await publish(producer, topic_prefix, *[listing(p) for p in patients[::2]], *some_visits(patients, 4))
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as first:
        await wait_processed(first, 30 + 240)
        before = {p: served_by(first.processor, p) for p in patients}
    events_before = await indices_events(kafka_bootstrap, topic_prefix)
    # what the retention does to old visits: none of them is there to be replayed
    await delete_all_records(kafka_bootstrap, topic_prefix + VISITS_TOPIC)

    async with running_worker(settings, store=MemoryStore()) as fresh:  # an empty disk
        await eventually(lambda: len(fresh.store.partitions) == 6 and not fresh._needs_restore, timeout_s=30)
        assert fresh.restored_records >= len(patients)
        assert {p: served_by(fresh.processor, p) for p in patients} == before
        # what an operator sees of the failover: the records read, the restore's and the refreshes' times
        metric = fresh.probe.registry.get_sample_value
        assert metric("flk_continuity_restored_records_total") == fresh.restored_records
        assert metric("flk_continuity_restore_seconds_count") >= 1
        await eventually(lambda: metric("flk_continuity_refresh_seconds_count") == 6, timeout_s=30)
        await publish(producer, topic_prefix, *some_visits(patients[:10], 1, start=10))
        await wait_processed(fresh, 10)
        for p in patients[:10]:
            assert served_by(fresh.processor, p)[3]["visits"] == before[p][3]["visits"] + 1
        after = {p: served_by(fresh.processor, p) for p in patients}
    events = await indices_events(kafka_bootstrap, topic_prefix)
    # the restore itself published nothing: only the ten patients with a new visit have a new event
    assert {p for p in patients if len(events[p]) != len(events_before[p])} == set(patients[:10])
    assert all(served(events[p][-1]) == after[p] for p in patients)


async def test_a_patient_whose_visits_all_left_the_window_gets_a_tombstone_and_a_listed_one_does_not(
        kafka_bootstrap, topic_prefix, producer):
    gone, listed, recent = (a_patient_key(6100 + i) for i in range(3))
    await publish(producer, topic_prefix, listing(listed),
                  *[visit(p, f"old-{p[-6:]}-{n}", when=f"2025-0{1 + n}-10T09:00:00Z") for p in (gone, listed)
                    for n in range(3)],
                  visit(recent, "recent-1", when="2026-03-01T09:00:00Z"))
    async with running_worker(service_settings(kafka_bootstrap, topic_prefix)) as worker:
        await wait_processed(worker, 8)
        table = await changelog_table(kafka_bootstrap, topic_prefix)
        assert all(table[p.encode()] is not None for p in (gone, listed, recent))
        # 18 months after the last of those visits: they have all left the window
        await worker.advance_to(date(2026, 10, 1))
        assert served_by(worker.processor, gone) is None  # nothing kept for the patient
        assert served_by(worker.processor, listed)[1] == UNIT_A
        assert served_by(worker.processor, recent)[3]["visits"] == 1
    table = await changelog_table(kafka_bootstrap, topic_prefix)
    assert table[gone.encode()] is None  # a tombstone
    assert decode_record(table[listed.encode()]).state.listing_unit_id == UNIT_A  # the listing is kept
    assert not decode_record(table[listed.encode()]).state.visits
    last = (await indices_events(kafka_bootstrap, topic_prefix))[gone][-1]
    assert (last["care_unit_id"], last["doctor"]["visits"], last["total"]["visits"]) == (None, 0, 0)

    async with running_worker(service_settings(kafka_bootstrap, topic_prefix, as_of=date(2026, 10, 1)),
                              store=MemoryStore()) as fresh:  # restored: the tombstone leaves no record
        await eventually(lambda: len(fresh.store.partitions) == 6 and not fresh._needs_restore, timeout_s=30)
        assert served_by(fresh.processor, gone) is None
        assert served_by(fresh.processor, listed)[1] == UNIT_A


async def test_visits_older_than_the_retention_are_gone_from_the_broker_and_every_patients_indices_stay_exact(
        kafka_bootstrap, producer, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    # a private topic config: raw visits kept one minute (the broker's retention then deletes them; the
    # test deletes them at once with DeleteRecords, which is what retention does)
    await ensure_topics(kafka_bootstrap, prefix=prefix, retention_ms={VISITS_TOPIC: 60_000})
    try:
        await _retention_scenario(kafka_bootstrap, prefix, producer, tmp_path)
    finally:
        await delete_topics_with_prefix(kafka_bootstrap, prefix)


async def _retention_scenario(kafka_bootstrap, prefix, producer, tmp_path):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, prefix + VISITS_TOPIC, configs={"retention.ms": None})])
        [resource] = response.to_object()["resources"]
        assert {e["config_names"]: e["config_value"] for e in resource["config_entries"]}["retention.ms"] == "60000"
    finally:
        await admin.close()

    patients = [a_patient_key(7000 + i) for i in range(80)]
    listings = [(p, UNIT_A, DOCTORS[0]) for p in patients[::3]]
    old = some_visits(patients, 5)
    new = some_visits(patients[::2], 2, start=20)
    rows = [read_record(VISITS_TOPIC, r.key, r.value, r.headers).data for r in old + new]
    await publish(producer, prefix, *[e for p, unit, doctor in listings
                                      for e in (listing(p, unit), flk_assigned(p, doctor, unit))], *old)
    settings = service_settings(kafka_bootstrap, prefix)
    async with running_worker(settings) as worker:
        await wait_processed(worker, 2 * len(listings) + len(old))
    ends = await delete_all_records(kafka_bootstrap, prefix + VISITS_TOPIC)
    assert await log_start_offsets(kafka_bootstrap, prefix + VISITS_TOPIC) == ends  # the old visits are gone
    await publish(producer, prefix, *new)
    async with running_worker(settings, store=MemoryStore()) as fresh:  # a new replica: nothing local
        await wait_processed(fresh, len(new))
        streamed = {p: served_by(fresh.processor, p) for p in patients}

    vpath, lpath = write_csvs(tmp_path, rows, listings)
    batch = subprocess.run([sys.executable, "-m", "tools.cli", "continuity", "indices", "--visits", str(vpath),
                            "--listings", str(lpath), "--as-of", AS_OF.isoformat()], capture_output=True, check=True)
    expected = {row["patient_id"]: row for row in map(orjson.loads, batch.stdout.splitlines())}
    assert set(expected) == set(patients)
    assert [p for p in patients if (streamed[p][0], streamed[p][2], streamed[p][3])
            != (expected[p]["as_of"], expected[p]["doctor"], expected[p]["total"])] == []
    events = await indices_events(kafka_bootstrap, prefix)
    assert all(served(events[p][-1]) == streamed[p] for p in patients)


async def test_the_changelog_holds_the_same_bytes_as_the_local_table(kafka_bootstrap, topic_prefix, producer):
    patients = [a_patient_key(8000 + i) for i in range(20)]
    await publish(producer, topic_prefix, *some_visits(patients, 3))
    async with running_worker(service_settings(kafka_bootstrap, topic_prefix)) as worker:
        await wait_processed(worker, 60)
        local = {k: v for p in worker.store.partitions for k, v in worker.store.items(p)}
    table = await changelog_table(kafka_bootstrap, topic_prefix)
    assert {k: v for k, v in table.items() if not k.startswith(b"\x00")} == local
    assert len(local) == len(patients)


async def test_a_table_written_before_its_changelog_existed_is_copied_to_the_empty_changelog(
        kafka_bootstrap, topic_prefix, producer):
    patients = [a_patient_key(8100 + i) for i in range(15)]
    await publish(producer, topic_prefix, *some_visits(patients, 3))
    old = MemoryStore()
    async with running_worker(service_settings(kafka_bootstrap, topic_prefix), store=old) as worker:
        await wait_processed(worker, 45)
        before = {p: served_by(worker.processor, p) for p in patients}
    for offsets in old._offsets.values():  # as a table of docs/adr/0006 was: no changelog position
        offsets.pop(CHANGELOG_POSITION)
    upgraded = f"t{uuid.uuid4().hex[:10]}."  # the same table over topics whose changelog is empty
    await ensure_topics(kafka_bootstrap, prefix=upgraded)
    try:
        async with running_worker(service_settings(kafka_bootstrap, upgraded), store=old) as worker:
            await eventually(lambda: len(worker.store.partitions) == 6 and not worker._needs_restore, timeout_s=30)
        assert len([k for k in await changelog_table(kafka_bootstrap, upgraded) if not k.startswith(b"\x00")]) == 15
        async with running_worker(service_settings(kafka_bootstrap, upgraded), store=MemoryStore()) as fresh:
            await eventually(lambda: len(fresh.store.partitions) == 6 and not fresh._needs_restore, timeout_s=30)
            assert {p: served_by(fresh.processor, p) for p in patients} == before
    finally:
        await delete_topics_with_prefix(kafka_bootstrap, upgraded)
