"""Restoring the continuity tables (docs/adr/0008), and what the changelog costs the worker, in one run.

    python bench/continuity/restore_bench.py restore [--patients 300000]
    python bench/continuity/restore_bench.py replay --before /work/main [--visits 100000] [--rounds 2]

``restore``: writes a region's patient tables (``--patients`` records of the state codec's bytes, 8
visits, a unit and an FLK each) to the changelog topic under a throwaway prefix, then times
(a) a replica with an empty disk: every partition's RocksDB table restored from the changelog, and
(b) a replica whose local tables are current: the tables reopened and the changelog read from their
position (nothing to read), and (c) what both do next, the refresh of every patient (decode, indices).

``replay``: the worker's replay of the same input (``--visits`` over ``--patients``/10 listed
patients) in its own process, alternately with the code in ``--before`` (e.g. a checkout of main
without the changelog) and this checkout, each round under a fresh prefix: events/s, ratio.
The load average is printed with each figure.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flk.events.admin import ensure_topics  # noqa: E402
from tools.infra.prune import Throwaway  # noqa: E402
from tools.infra.settings import InfraSettings  # noqa: E402

UNITS = [f"SE2321000016-VC{i:02d}" for i in range(40)]
DOCTORS = [f"SE2321000016-L{i:04d}" for i in range(400)]
AS_OF = date(2026, 3, 15)


def bench_key(n: int) -> str:
    """A patient key of the contract's shape (pk1_ + 26 base32 characters)."""
    import base64
    from hashlib import blake2b

    return "pk1_" + base64.b32encode(blake2b(str(n).encode(), digest_size=16).digest()).decode().lower()[:26]


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def patient_record(rng: random.Random, n: int) -> tuple[bytes, bytes]:
    from services.continuity.domain.patient import PatientState, StoredVisit
    from services.continuity.service_layer.record import PatientRecord, encode_record

    unit = UNITS[n % len(UNITS)]
    doctors = sorted(rng.sample(DOCTORS, 3))
    start = (AS_OF - timedelta(days=540)).toordinal()
    stamps = sorted(rng.randrange(start, AS_OF.toordinal()) * 86_400 + rng.randrange(86_400) for _ in range(8))
    visits = tuple(StoredVisit(s, i, rng.getrandbits(63), rng.choice(doctors), unit, 3) for i, s in enumerate(stamps))
    state = PatientState(unit, (doctors[0],), visits, ())
    return bench_key(n).encode(), encode_record(PatientRecord(state, doctors[0], fingerprint=n + 1))


async def restore_bench(args, mine: Throwaway) -> None:
    from aiokafka import AIOKafkaConsumer

    from flk.events.producer import new_producer
    from flk.events.registry import registry
    from services.continuity.adapters.changelog import offset_record, restore
    from services.continuity.adapters.store import RocksStore
    from services.continuity.service_layer.processor import Processor
    from services.continuity.domain.settings import ContinuitySettings

    bootstrap = mine.settings.kafka_bootstrap
    await ensure_topics(bootstrap, prefix=mine.prefix)
    topic = mine.prefix + registry().changelog("continuity", "patients").name
    partitions = registry().patient_partitions
    rng = random.Random(1)
    producer = new_producer(bootstrap, "restore-bench")
    await producer.start()
    size = 0
    t0 = time.perf_counter()
    try:
        futures = []
        for n in range(args.patients):
            k, v = patient_record(rng, n)
            size += len(v)
            futures.append(await producer.send(topic, key=k, value=v, partition=n % partitions))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        for p in range(partitions):
            k, v = offset_record("ehr.visits.v1", args.patients)
            futures.append(await producer.send(topic, key=k, value=v, partition=p))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    print(f"changelog written: {args.patients} patients, {size / 1e6:.0f} MB of records "
          f"({size / args.patients:.0f} bytes each), {time.perf_counter() - t0:.1f}s; {load()}")

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", fetch_max_bytes=64 * 1024 * 1024,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    with tempfile.TemporaryDirectory() as tmp:
        store = RocksStore(Path(tmp))
        try:
            for p in range(partitions):
                store.open(p)
            t0 = time.perf_counter()
            read = await restore(consumer, store, topic, range(partitions))
            from_changelog = time.perf_counter() - t0
            print(f"(a) empty disk, restored from the changelog: {sum(read.values())} records in {from_changelog:.1f}s "
                  f"({sum(read.values()) / from_changelog:.0f} records/s); {load()}")
            store.close_all()

            t0 = time.perf_counter()
            for p in range(partitions):
                store.open(p)
            read = await restore(consumer, store, topic, range(partitions))
            from_local = time.perf_counter() - t0
            print(f"(b) current local RocksDB: reopened, {sum(read.values())} changelog records to read, "
                  f"{from_local:.2f}s; {load()}")

            processor = Processor(ContinuitySettings(), store, AS_OF)
            t0 = time.perf_counter()
            for p in range(args.refresh_partitions):
                processor.summaries[p], processor.sizes[p] = {}, {}
                processor.refresh_partition(p)
            refresh = (time.perf_counter() - t0) * partitions / args.refresh_partitions
            print(f"(c) then (both) every patient refreshed (decoded, indices computed): {refresh:.1f}s "
                  f"(measured on {args.refresh_partitions} of {partitions} partitions, scaled); {load()}")
            print(f"restore time, empty disk vs current disk: {from_changelog + refresh:.1f}s vs "
                  f"{from_local + refresh:.1f}s")
        finally:
            store.close_all()
            await consumer.stop()


REPLAY = r'''
import asyncio, sys, time, os
from datetime import date
from pathlib import Path
from flk.settings import PlatformSettings
from services.continuity.bootstrap import ContinuityWorker
from services.continuity.settings import ContinuityServiceSettings

async def main(bootstrap, prefix, total, data_dir):
    s = ContinuityServiceSettings(platform=PlatformSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix,
                                  environment="test"), as_of=date(2026, 3, 15), store="rocksdb",
                                  data_dir=Path(data_dir), api_enabled=False, snapshot_enabled=False,
                                  metrics_port=None, session_timeout_ms=10000, heartbeat_interval_ms=1000)
    w = ContinuityWorker(s)
    await w.start()
    while w.processed_events == 0:
        await asyncio.sleep(0.01)
    first, t0, c0 = w.processed_events, time.perf_counter(), time.process_time()
    while w.processed_events < total:
        await asyncio.sleep(0.01)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    await w.stop()
    print((total - first) / elapsed, (total - first) / cpu)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
'''


async def replay_round(args, code: Path) -> tuple[float, float]:
    from flk.events.envelope import make_record
    from flk.events.producer import new_producer, publish_many

    async with Throwaway(InfraSettings(), "bench") as mine:
        bootstrap = mine.settings.kafka_bootstrap
        await ensure_topics(bootstrap, prefix=mine.prefix)
        rng = random.Random(1)
        keys = [bench_key(n) for n in range(args.visits // 10)]
        start = datetime(2025, 1, 1, tzinfo=timezone.utc)
        records = [make_record("listing.started.v1", {
            "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, k)), "patient_key": k, "care_unit_id": UNITS[i % 40],
            "started_on": "2024-01-01", "responsibility_from": "2024-01-02", "origin": "active_choice",
            "initiated_by": "person"}, source="bench") for i, k in enumerate(keys)]
        for n in range(args.visits):
            i = rng.randrange(len(keys))
            k = keys[i]
            records.append(make_record("visit.recorded.v1", {
                "visit_id": f"v{n}", "patient_key": k, "practitioner_id": rng.choice(DOCTORS[:40]),
                "profession": "läkare", "care_unit_id": UNITS[i % 40], "contact_type": "besok",
                "occurred_at": (start + timedelta(minutes=rng.randrange(400_000))).isoformat().replace("+00:00", "Z"),
            }, source="bench"))
        producer = new_producer(bootstrap, "replay-bench")
        await producer.start()
        try:
            await publish_many(producer, records, mine.prefix)
        finally:
            await producer.stop()
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", REPLAY, bootstrap, mine.prefix, str(len(records)), tmp],
                                 env=dict(os.environ, PYTHONPATH=str(code)), cwd=str(code), capture_output=True,
                                 text=True, timeout=1800)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        eps, eps_cpu = map(float, out.stdout.split()[-2:])
        return eps, eps_cpu


async def replay_bench(args) -> None:
    results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for r in range(args.rounds):
        for name, code in (("before", Path(args.before)), ("after", ROOT)):
            eps, eps_cpu = await replay_round(args, code)
            results[name].append((eps, eps_cpu))
            print(f"round {r + 1} {name:6s} ({code}): {eps:.0f} events/s, {eps_cpu:.0f} per CPU-second; {load()}")
    mean = {k: (sum(e for e, _ in v) / len(v), sum(c for _, c in v) / len(v)) for k, v in results.items()}
    print(f"mean: before {mean['before'][0]:.0f} events/s ({mean['before'][1]:.0f}/CPU-s), after "
          f"{mean['after'][0]:.0f} ({mean['after'][1]:.0f}/CPU-s): after/before {mean['after'][0] / mean['before'][0]:.2f} "
          f"(per CPU-second {mean['after'][1] / mean['before'][1]:.2f}); {load()}")


async def main(args) -> None:
    if args.mode == "restore":
        async with Throwaway(InfraSettings(), "bench") as mine:
            await restore_bench(args, mine)
    else:
        await replay_bench(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("restore", "replay"))
    parser.add_argument("--patients", type=int, default=300_000)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--refresh-partitions", type=int, default=6, help="restore: refresh only this many")
    parser.add_argument("--before", default="/work/main")
    asyncio.run(main(parser.parse_args()))
