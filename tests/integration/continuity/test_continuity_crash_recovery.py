"""A worker killed with SIGKILL mid-replay and restarted ends with the batch CLI's indices."""
from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from flk.events.envelope import make_record, read_record
from flk.events.producer import publish_many
from flk.events.registry import registry
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key
from tests.support.ports import free_port

from continuity_stream import AS_OF, flk_assigned, listing, write_csvs

INPUTS = [registry().topic_for(t).name for t in ("visit.recorded.v1", "listing.started.v1")]
INDICES_TOPIC = registry().topic_for("continuity.indices_changed.v1").name
DOCTORS = [f"SE2321000016-L{i:03d}" for i in range(1, 6)]


def scenario(patients: int, visits: int, seed: int = 7):
    rng = random.Random(seed)
    keys = [a_patient_key(1000 + i) for i in range(patients)]
    listings, listing_events, visit_rows = [], [], []
    for i, key in enumerate(keys):
        if i % 5:
            unit, doctor = (UNIT_A if i % 2 else UNIT_B), rng.choice(DOCTORS)
            listings.append((key, unit, doctor))
            listing_events += [listing(key, unit), flk_assigned(key, doctor, unit)]
    start = datetime(2024, 6, 1, tzinfo=timezone.utc)
    for n in range(visits):
        when = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 680))
        visit_rows.append({
            "visit_id": f"v{n}", "patient_key": rng.choice(keys), "practitioner_id": rng.choice(DOCTORS),
            "profession": rng.choice(["läkare", "läkare", "sjuksköterska"]),
            "care_unit_id": rng.choice([UNIT_A, UNIT_A, UNIT_B]), "contact_type": "besok",
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
        })
    visit_rows += rng.sample(visit_rows, visits // 20)  # redelivered duplicates
    return listings, listing_events, visit_rows


def start_worker(bootstrap: str, prefix: str, data_dir, batch: int) -> subprocess.Popen:
    env = dict(os.environ, FLK_KAFKA_BOOTSTRAP=bootstrap, FLK_TOPIC_PREFIX=prefix, FLK_ENVIRONMENT="test",
               FLK_CONTINUITY_API_ENABLED="false", FLK_CONTINUITY_SNAPSHOT_ENABLED="false",
               FLK_CONTINUITY_METRICS_PORT=str(free_port()), FLK_CONTINUITY_BATCH_MAX_RECORDS=str(batch),
               FLK_CONTINUITY_SESSION_TIMEOUT_MS="6000", FLK_CONTINUITY_HEARTBEAT_INTERVAL_MS="1000")
    return subprocess.Popen([sys.executable, "-m", "tools.cli", "continuity", "worker", "--store", "rocksdb",
                             "--data-dir", str(data_dir), "--as-of", AS_OF.isoformat()], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def progress(bootstrap: str, prefix: str) -> tuple[int, int]:
    """(committed, end) summed over the worker's input partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=prefix + "continuity",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(prefix + t, p) for t in INPUTS for p in range(6)]
        ends = await consumer.end_offsets(tps)
        committed = 0
        for tp in tps:
            committed += await consumer.committed(tp) or 0
        return committed, sum(ends.values())
    finally:
        await consumer.stop()


async def last_indices(bootstrap: str, prefix: str) -> dict[str, dict]:
    consumer = AIOKafkaConsumer(prefix + INDICES_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    latest: dict[str, dict] = {}
    try:
        ends = await consumer.end_offsets([TopicPartition(prefix + INDICES_TOPIC, p) for p in range(6)])
        while True:
            behind = [tp for tp, end in ends.items() if end and await consumer.position(tp) < end]
            if not behind:
                break
            for part in (await consumer.getmany(timeout_ms=500)).values():
                for r in part:
                    latest[r.key.decode()] = read_record(INDICES_TOPIC, r.key, r.value, r.headers).data
    finally:
        await consumer.stop()
    return latest


@pytest.mark.slow
async def test_a_worker_killed_with_sigkill_mid_replay_and_restarted_ends_with_the_batch_clis_indices(
        kafka_bootstrap, topic_prefix, producer, tmp_path):
    listings, listing_events, visit_rows = scenario(patients=1500, visits=30_000)
    await publish_many(producer, listing_events, topic_prefix)
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="ehr/test") for v in visit_rows],
                       topic_prefix)
    data_dir = tmp_path / "worker"

    worker = start_worker(kafka_bootstrap, topic_prefix, data_dir, batch=100)
    try:
        for _ in range(400):
            committed, end = await progress(kafka_bootstrap, topic_prefix)
            if committed > 1000:
                break
            await asyncio.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert 0 < committed < end, "the first run must be killed mid-replay"

    worker = start_worker(kafka_bootstrap, topic_prefix, data_dir, batch=2000)
    try:
        for _ in range(600):
            committed, end = await progress(kafka_bootstrap, topic_prefix)
            if committed == end:
                break
            await asyncio.sleep(0.1)
        assert committed == end
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
    streamed = await last_indices(kafka_bootstrap, topic_prefix)

    vpath, lpath = write_csvs(tmp_path, visit_rows, listings)
    batch = subprocess.run([sys.executable, "-m", "tools.cli", "continuity", "indices", "--visits", str(vpath),
                            "--listings", str(lpath), "--as-of", AS_OF.isoformat()], capture_output=True, check=True)
    expected = {row["patient_id"]: row for row in map(orjson.loads, batch.stdout.splitlines())}

    assert set(streamed) == set(expected)
    mismatches = [k for k, row in expected.items()
                  if (streamed[k]["as_of"], streamed[k]["doctor"], streamed[k]["total"])
                  != (row["as_of"], row["doctor"], row["total"])]
    assert mismatches == []
