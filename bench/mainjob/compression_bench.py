"""Benchmark: Kafka producer compression and record batch size for the events the region replay publishes
(issue 15).

The region replay's profiles put socket writes at 7–17 % of the main job's and the continuity worker's
CPU, and the broker used ~100 CPU-s. This takes the first ``--events`` events of the simulated
``region`` preset (``--people`` persons), as the main job makes them (``make_record``: CloudEvents JSON
with headers), and for each codec and record batch size (``--batch-bytes``, the producer's
``max_batch_size``; default the producers' own, ``RECORD_BATCH_BYTES``), interleaved ``--rounds`` times:

* publishes them to fresh topics of the `flk infra up` broker (the registry's topics under a
  throwaway prefix) the way the main job does (``publish_many``: record batches per partition,
  acks=all, idempotent), measuring this process's CPU and the broker's (from /proc);
* reads them all back with one consumer (every partition, to the end offsets), measuring the same;
* sums the bytes the broker stored for those topics (its log segments).

It prints CPU-s per 100 000 events for the producer, the consumer and the broker, their total, and
the stored bytes per event. The records' bytes are the same for every configuration (checked: the consumer's
values hash equal).

    python -m bench.mainjob.compression_bench --people 30000 --events 300000 --rounds 3
    python -m bench.mainjob.compression_bench --codecs none --batch-bytes 16384 524288
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.listing.fact_chunk_bench import own_cpu
from bench.listing.goal_kpi_bench import backend_cpu_seconds, load
from flk.events.producer import RECORD_BATCH_BYTES

CODECS = ("none", "lz4", "zstd", "snappy", "gzip")


def pid_cpu(pid: int) -> float:
    seconds = backend_cpu_seconds(pid)  # (any local process's CPU seconds, from /proc)
    if seconds is None:
        raise SystemExit(f"the broker (pid {pid}) is gone")
    return seconds


def region_records(people: int, limit: int) -> list:
    from flk.events.envelope import make_record
    from tools.simulator.generate import SIM_PREFIX, Simulation

    sim = Simulation("region", seed=42, limit_people=people)
    out = []
    for event_type, data, at in sim.stream():
        if event_type.startswith(SIM_PREFIX):
            continue
        out.append(make_record(event_type, data, source=sim.source,
                               time=datetime.fromtimestamp(at, tz=timezone.utc)))
        if len(out) >= limit:
            break
    return out


def stored_bytes(log_dirs: list[Path], prefix: str) -> int:
    total = 0
    for log_dir in log_dirs:
        for topic_dir in log_dir.glob(prefix + "*"):
            total += sum(f.stat().st_size for f in topic_dir.glob("*.log"))
    return total


async def one_run(bootstrap: str, records: list, codec: str, batch_bytes: int, kafka_pid: int,
                  log_dirs: list[Path]) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from flk.events.admin import delete_topics_with_prefix, ensure_topics
    from flk.events.partitioner import default_partitioner
    from flk.events.producer import publish_many

    prefix = f"bench-compress-{uuid.uuid4().hex[:8]}-"
    await ensure_topics(bootstrap, prefix=prefix)
    await asyncio.sleep(2.0)  # every partition's leader known to the broker's metadata cache too
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="bench-compress", acks="all",
                                    enable_idempotence=True, linger_ms=5, partitioner=default_partitioner,
                                    max_batch_size=batch_bytes,
                                    compression_type=None if codec == "none" else codec)
        await producer.start()
        try:
            broker, cpu, started = pid_cpu(kafka_pid), own_cpu(), time.perf_counter()
            for start in range(0, len(records), 1000):  # the simulator's publishing batch
                await publish_many(producer, records[start:start + 1000], prefix)
            produce = {"wall": time.perf_counter() - started, "client": own_cpu() - cpu,
                       "broker": pid_cpu(kafka_pid) - broker}
            parts = [TopicPartition(t, p) for t in sorted({prefix + r.topic for r in records})
                     for p in sorted(await producer.partitions_for(t))]
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=1 << 20)
        await consumer.start()
        try:
            consumer.assign(parts)
            ends = {tp: off for tp, off in (await consumer.end_offsets(parts)).items() if off}
            digest, seen = hashlib.blake2b(digest_size=16), 0
            broker, cpu, started = pid_cpu(kafka_pid), own_cpu(), time.perf_counter()
            values: dict[TopicPartition, list[bytes]] = {}
            deadline = time.monotonic() + 600
            while seen < sum(ends.values()) and time.monotonic() < deadline:
                for tp, batch in (await consumer.getmany(timeout_ms=200, max_records=10_000)).items():
                    values.setdefault(tp, []).extend(m.value for m in batch)
                    seen += len(batch)
            consume = {"wall": time.perf_counter() - started, "client": own_cpu() - cpu,
                       "broker": pid_cpu(kafka_pid) - broker}
            for tp in sorted(values):
                for v in values[tp]:
                    digest.update(v)
        finally:
            await consumer.stop()
        await asyncio.sleep(1.0)  # the broker's segments are written (page cache) by now; sizes settle
        return {"produce": produce, "consume": consume, "stored": stored_bytes(log_dirs, prefix),
                "seen": seen, "digest": digest.hexdigest()}
    finally:
        await delete_topics_with_prefix(bootstrap, prefix)


async def main(args: argparse.Namespace) -> None:
    from tools.infra.kafka import Kafka
    from tools.infra.settings import InfraSettings

    missing = [c for c in args.codecs if c not in ("none", "gzip")]
    if missing:
        from aiokafka.codec import has_lz4

        if not has_lz4():
            raise SystemExit(f"{', '.join(missing)}: aiokafka needs cramjam for these codecs "
                             "(pip install -e '.[bench]')")
    settings = InfraSettings()
    broker = Kafka(settings)
    kafka_pid = broker.process.pid()
    if kafka_pid is None:
        raise SystemExit("no broker of `flk infra up` is running")
    log_dirs = [broker.data_dir]
    records = region_records(args.people, args.events)
    n = len(records)
    raw = sum(len(r.value) + len(r.key or b"") for r in records)
    print(f"{n} events of the region preset ({args.people} people), {raw / n:.0f} B of key and value each; "
          f"{load()}")
    configurations = [(codec, size) for codec in args.codecs for size in args.batch_bytes]
    label = {(codec, size): f"{codec} {size // 1024} KiB" for codec, size in configurations}
    results: dict[str, list[dict]] = {label[k]: [] for k in configurations}
    for rnd in range(args.rounds):
        for codec, size in configurations:
            name = label[(codec, size)]
            r = await one_run(settings.kafka_bootstrap, records, codec, size, kafka_pid, log_dirs)
            if r["seen"] != n:
                raise SystemExit(f"{name}: read back {r['seen']} of {n} events")
            results[name].append(r)
            p, c = r["produce"], r["consume"]
            print(f"  round {rnd + 1} {name:<12} produce {p['wall']:5.1f} s (client {p['client']:5.1f}, broker "
                  f"{p['broker']:5.1f})  consume {c['wall']:5.1f} s (client {c['client']:5.1f}, broker "
                  f"{c['broker']:5.1f})  stored {r['stored'] / n:6.1f} B/event  {load()}")
    digests = {r["digest"] for rs in results.values() for r in rs}
    if len(digests) != 1:
        raise SystemExit("the configurations read back different values")
    per = 100_000 / n
    print(f"\nmedians over {args.rounds} rounds, CPU-s per 100 000 events (same values read back by every "
          "configuration)")
    print(f"{'codec, batch':<13} {'producer':>9} {'broker in':>10} {'consumer':>9} {'broker out':>11} {'total':>7} "
          f"{'vs first':>8} {'stored B/event':>15}")
    base = None
    for name, rs in results.items():
        med = {k: statistics.median(r[side][part] for r in rs) * per
               for k, (side, part) in {"pc": ("produce", "client"), "pb": ("produce", "broker"),
                                       "cc": ("consume", "client"), "cb": ("consume", "broker")}.items()}
        total = sum(med.values())
        base = base if base is not None else total
        stored = statistics.median(r["stored"] for r in rs) / n
        print(f"{name:<13} {med['pc']:9.2f} {med['pb']:10.2f} {med['cc']:9.2f} {med['cb']:11.2f} {total:7.2f} "
              f"{total / base:8.2f} {stored:15.1f}")
    print(load())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--codecs", nargs="+", default=list(CODECS), choices=CODECS)
    parser.add_argument("--batch-bytes", nargs="+", type=int, default=[RECORD_BATCH_BYTES],
                        help="the producer's max_batch_size, one run each (aiokafka's default: 16384)")
    asyncio.run(main(parser.parse_args()))
