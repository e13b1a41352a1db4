"""The Kafka broker stopped and restarted mid-stream loses nothing end to end.

A PRIVATE broker (own ports, own state directory, the cached jars; the shared broker on 19092 is
never touched) carries an EHR-like publisher's visits to the continuity worker. A third of the way
through, the broker is stopped (SIGTERM: a controlled shutdown) and started again; the test goes on
once it answers a metadata request. Publisher and worker use the platform's producer: sends wait
while the broker is away, and a producer whose send failed for good is replaced (aiokafka does not
recover an idempotent producer from OutOfOrderSequenceNumber); the publisher re-sends what was not
acknowledged (as an EHR adapter does), the worker replays a batch it could not publish. At the end
every visit is on the topic and the worker's indices equal the baseline CLI's on the same visits:
0 lost, 0 counted twice.
"""
from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from flk.events.admin import ensure_topics
from flk.events.envelope import make_record
from flk.events.producer import new_producer, publish_many
from tools.infra.kafka import Kafka
from tools.infra.settings import InfraSettings
from tests.integration.continuity.continuity_stream import flk_assigned, listing, write_csvs
import reliability_support  # noqa: F401,E402 - puts the continuity tests on sys.path first
from tests.integration.continuity.test_continuity_crash_recovery import last_indices, progress
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key

from reliability_support import (REPO, continuity_service, free_port, read_topics,
                                 wait_until)

AS_OF = "2026-06-30"
DOCTORS = [f"SE2321000016-L{i:03d}" for i in range(1, 6)]


def scenario(patients: int, visits: int, seed: int = 11):
    rng = random.Random(seed)
    keys = [a_patient_key(5000 + i) for i in range(patients)]
    listings = [(k, UNIT_A if i % 2 else UNIT_B, rng.choice(DOCTORS)) for i, k in enumerate(keys)]
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = [{"visit_id": f"k{n}", "patient_key": rng.choice(keys), "practitioner_id": rng.choice(DOCTORS),
             "profession": rng.choice(["läkare", "läkare", "sjuksköterska"]),
             "care_unit_id": rng.choice([UNIT_A, UNIT_B]), "contact_type": "besok",
             "occurred_at": (start + timedelta(minutes=rng.randrange(0, 60 * 24 * 540))).isoformat()
             .replace("+00:00", "Z")} for n in range(visits)]
    return listings, rows


@pytest.fixture
def private_kafka(tmp_path):
    """A broker of our own: stopping it disturbs nobody. Its state lives in a temporary directory;
    its log is kept in the test's tmp_path (pytest keeps the last runs' directories)."""
    state = Path(tempfile.mkdtemp(prefix="flk-rel-kafka-"))
    settings = InfraSettings(state_dir=state, kafka_port=free_port(),
                             kafka_controller_port=free_port(),
                             kafka_heap="384m", kafka_start_timeout_s=60)
    kafka = Kafka(settings)
    kafka.up()
    try:
        yield kafka, settings
    finally:
        kafka.down()
        shutil.copy(kafka.process.log_file, tmp_path / "private-kafka.log")
        shutil.rmtree(state, ignore_errors=True)


async def publish_resending(bootstrap: str, records, prefix: str, sent: list[int], chunk: int = 100) -> int:
    """Publish in chunks, as an EHR adapter does, through the platform's producer: while the broker is
    away the sends wait (an idempotent producer retries until the broker answers); a chunk whose send
    failed for good (the producer then replaces itself) is sent again. Returns how many were re-sent."""
    resent = 0
    producer = new_producer(bootstrap, client_id="ehr-adapter")
    await producer.start()
    try:
        for i in range(0, len(records), chunk):
            part = records[i:i + chunk]
            while True:
                try:
                    await publish_many(producer, part, prefix)
                    break
                except Exception:  # noqa: BLE001 - not acknowledged: the chunk again (duplicates keep their ids)
                    resent += 1
                    await asyncio.sleep(0.5)
            sent[0] += len(part)
            await asyncio.sleep(0.02)
    finally:
        await asyncio.wait_for(producer.stop(), timeout=15)
    return resent


@pytest.mark.slow
async def test_a_broker_stopped_and_restarted_mid_stream_loses_no_event_end_to_end(
        private_kafka, infra_settings, tmp_path):
    kafka, infra = private_kafka
    bootstrap = infra.kafka_bootstrap
    await ensure_topics(bootstrap, prefix="")
    listings, rows = scenario(patients=400, visits=8000)
    records = [r for k, u, d in listings for r in (listing(k, u), flk_assigned(k, d, u))]
    records += [make_record("visit.recorded.v1", v, source="ehr/test") for v in rows]

    # the worker without its API needs no database (the shared one is named but never opened)
    w = continuity_service(bootstrap, "", infra_settings.dsn("app"), tmp_path, as_of=AS_OF, store="rocksdb", batch=200,
                           FLK_CONTINUITY_API_ENABLED="false")
    w.base_url = None
    w.start()
    try:
        await w.ready()
        sent = [0]
        publishing = asyncio.create_task(publish_resending(bootstrap, records, "", sent))
        await wait_until(lambda: sent[0] >= len(records) // 3, timeout_s=120, what="a third published")
        down_at, outage_at = time.monotonic(), sent[0]
        await asyncio.to_thread(kafka.down)  # SIGTERM: a controlled shutdown
        stop_s = time.monotonic() - down_at
        assert kafka.status() == "kafka: stopped"
        await asyncio.sleep(5)
        up_at = time.monotonic()
        await asyncio.to_thread(kafka.up)  # returns once the broker answers a metadata request
        start_s, outage_s = time.monotonic() - up_at, time.monotonic() - down_at
        resent = await asyncio.wait_for(publishing, timeout=90)

        async def caught_up() -> bool:
            committed, end = await progress(bootstrap, "")
            return committed == end and end >= len(records)
        await wait_until(caught_up, timeout_s=60, interval_s=1.0, what="the worker to consume everything")
        assert w.alive, "the worker rode the outage out"
    finally:
        w.stop()
    on_topic = {orjson.loads(r.value)["visit_id"] for r in await read_topics(bootstrap, ["ehr.visits.v1"])}
    streamed = await last_indices(bootstrap, "")

    vpath, lpath = write_csvs(tmp_path, rows, listings)
    batch = subprocess.run([sys.executable, "-m", "tools.cli", "continuity", "indices", "--visits", str(vpath),
                            "--listings", str(lpath), "--as-of", AS_OF], cwd=REPO, capture_output=True, check=True)
    expected = {row["patient_id"]: row for row in map(orjson.loads, batch.stdout.splitlines())}
    lost_on_topic = {v["visit_id"] for v in rows} - on_topic
    mismatches = [k for k, row in expected.items() if k not in streamed
                  or (streamed[k]["doctor"], streamed[k]["total"]) != (row["doctor"], row["total"])]
    replaced = w.log().count("replaced by a new producer")
    print(f"\nkafka restart: broker stopped after {outage_at} of {len(records)} events "
          f"(stop {stop_s:.1f} s, start {start_s:.1f} s), back after {outage_s:.0f} s; "
          f"worker producer replaced {replaced}x; "
          f"{resent} chunks re-sent; {len(lost_on_topic)} visits missing on the topic; "
          f"{len(mismatches)} of {len(expected)} patients differ from the baseline CLI")
    assert lost_on_topic == set()
    assert mismatches == []
