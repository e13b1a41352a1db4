"""The output topic never regresses, whatever the membership changes (issue 14, docs/adr/0008).

Three worker processes share the partitions while a scenario replays; at random points of the replay
one is SIGKILLed and restarted, all three are killed and restarted together (the issue's case: the first
to rejoin holds every partition for a while), and one is stopped for good while a fresh replica with an
empty disk joins. At the end, the last ``continuity.indices_changed`` event per patient equals the
baseline CLI's indices and what a replica restored from the changelog serves, and each patient's events
never go backwards (every visit of the scenario is in the window and none is cancelled, so a patient's
visit counts at a unit only grow: an event with fewer visits after one with more is a regression).
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys

import orjson
import pytest

from flk.events.producer import publish_many
from flk.events.envelope import make_record
from services.continuity.adapters.store import MemoryStore
from tests.support.ports import free_port

from changelog_support import indices_events, served, served_by
from continuity_stream import AS_OF, eventually, running_worker, service_settings, write_csvs
from test_continuity_crash_recovery import progress, scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Replica:
    def __init__(self, name: str, bootstrap: str, prefix: str, data_dir, log_dir) -> None:
        self.name, self.bootstrap, self.prefix, self.data_dir, self.log_dir = name, bootstrap, prefix, data_dir, log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, batch: int = 100) -> "Replica":
        self.starts += 1
        env = dict(os.environ, FLK_KAFKA_BOOTSTRAP=self.bootstrap, FLK_TOPIC_PREFIX=self.prefix,
                   FLK_ENVIRONMENT="test", FLK_CONTINUITY_API_ENABLED="false",
                   FLK_CONTINUITY_SNAPSHOT_ENABLED="false", FLK_CONTINUITY_METRICS_PORT=str(free_port()),
                   FLK_CONTINUITY_BATCH_MAX_RECORDS=str(batch), FLK_CONTINUITY_SESSION_TIMEOUT_MS="6000",
                   FLK_CONTINUITY_HEARTBEAT_INTERVAL_MS="1000", FLK_CONTINUITY_CLIENT_ID=f"flk-continuity-{self.name}")
        log = (self.log_dir / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "continuity", "worker", "--store", "rocksdb",
                                      "--data-dir", str(self.data_dir), "--as-of", AS_OF.isoformat()],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


async def until_progress(bootstrap: str, prefix: str, fraction: float, timeout_s: float = 300.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        committed, end = await progress(bootstrap, prefix)
        if committed >= end * fraction:
            return
        assert asyncio.get_running_loop().time() < deadline, f"stuck at {committed}/{end}"
        await asyncio.sleep(0.1)


async def test_after_kills_a_restart_together_and_a_fresh_replica_the_last_event_per_patient_equals_the_served_indices(
        kafka_bootstrap, topic_prefix, producer, tmp_path):
    seed = int(os.environ.get("FLK_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"seed {seed}")
    listings, listing_events, visit_rows = scenario(patients=800, visits=12_000, seed=seed % 1000)
    await publish_many(producer, listing_events, topic_prefix)
    await publish_many(producer, [make_record("visit.recorded.v1", v, source="ehr/test") for v in visit_rows],
                       topic_prefix)
    replicas = [Replica(n, kafka_bootstrap, topic_prefix, tmp_path / n, tmp_path) for n in ("a", "b", "c", "d")]
    a, b, c, d = replicas
    points = sorted(rng.uniform(0.1, 0.8) for _ in range(3))
    try:
        for r in (a, b, c):
            r.start()
        await until_progress(kafka_bootstrap, topic_prefix, points[0])
        b.kill()  # SIGKILL and restart on the same disk
        b.start()
        await until_progress(kafka_bootstrap, topic_prefix, points[1])
        for r in (a, b, c):  # all three killed and restarted together
            r.kill()
        for r in (a, b, c):
            r.start()
        await until_progress(kafka_bootstrap, topic_prefix, points[2])
        c.kill()  # gone for good; a fresh replica with an empty disk joins
        d.start()
        await until_progress(kafka_bootstrap, topic_prefix, 1.0)
    finally:
        for r in replicas:
            r.stop()
    events = await indices_events(kafka_bootstrap, topic_prefix)

    vpath, lpath = write_csvs(tmp_path, visit_rows, listings)
    batch = subprocess.run([sys.executable, "-m", "tools.cli", "continuity", "indices", "--visits", str(vpath),
                            "--listings", str(lpath), "--as-of", AS_OF.isoformat()], capture_output=True, check=True)
    expected = {row["patient_id"]: row for row in map(orjson.loads, batch.stdout.splitlines())}
    assert set(events) == set(expected)
    stale = [k for k, row in expected.items()
             if (events[k][-1]["as_of"], events[k][-1]["doctor"], events[k][-1]["total"])
             != (row["as_of"], row["doctor"], row["total"])]
    assert stale == [], f"seed {seed}: {len(stale)} patients' last event is not their indices"
    # (the visits that count are those at the listing unit: compare events of the same unit)
    backwards = [k for k, seq in events.items()
                 if any(x["care_unit_id"] == y["care_unit_id"] and (x["doctor"]["visits"] > y["doctor"]["visits"]
                                                                    or x["total"]["visits"] > y["total"]["visits"])
                        for x, y in zip(seq, seq[1:]))]
    assert backwards == [], f"seed {seed}: {len(backwards)} patients' events went backwards"

    # what a replica restored from the changelog serves is what the topic says last
    async with running_worker(service_settings(kafka_bootstrap, topic_prefix), store=MemoryStore()) as fresh:
        await eventually(lambda: len(fresh.store.partitions) == 6 and not fresh._needs_restore, timeout_s=60)
        await asyncio.sleep(0.5)
        mismatched = [k for k in expected if served_by(fresh.processor, k) != served(events[k][-1])]
    assert mismatched == []
