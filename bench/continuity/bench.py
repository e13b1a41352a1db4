"""Continuity benchmark against the real broker, in one run.

    python bench/continuity/bench.py [--visits 200000] [--patients 20000] [--latency-seconds 10] [--worker-runs 3]

1. publishes N simulated visits (+ listings) under a fresh topic prefix;
2. (a) faust, each in its own process and consumer group: an agent doing nothing per event (faust's
   own per-event ceiling) and the naive agent (one table update per event): events/s;
3. (b) this worker (RocksDB tables, batch consumption) replays listings + visits: visit events/s over
   the visits applied after the last listing (the same events whatever the batch size), ratios, bytes of
   state per patient. It replays them --worker-runs times (default 3), each under topics and tables of its
   own: a replay takes ~5 s against the naive agent's minute, so one replay's figure moves with a moment's
   load; the median replay is the figure, and every replay is printed;
4. (c) then the worker runs as deployed (`flk continuity worker`, its own process, resuming from its
   tables), this process offers 1 000 events/s and measures for probe visits (one per 100 events) the
   time from publish to the index being visible through the HTTP API (with auth and audit): p50/p99.
Optional: --profile writes a cProfile of the worker's replay to bench/continuity/worker.prof.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flk.events.admin import ensure_topics  # noqa: E402
from flk.events.envelope import make_record  # noqa: E402
from flk.events.producer import new_producer, publish_many  # noqa: E402
from tools.infra.prune import Throwaway  # noqa: E402
from tools.infra.settings import InfraSettings  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.waiting import became_ready  # noqa: E402
from flk.security.pseudonym import PersonId, patient_key  # noqa: E402

UNITS = ["SE2321000016-VCA1", "SE2321000016-VCB2", "SE2321000016-VCC3"]
DOCTORS = [f"SE2321000016-L{i:03d}" for i in range(1, 31)]


def key(i: int) -> str:
    return patient_key(PersonId("personnummer", f"19{i:010d}"), b"bench")


def visit(rng, n: int, pk: str, when: datetime | None = None) -> dict:
    when = when or datetime(2024, 10, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(0, 60 * 24 * 520))
    return {"visit_id": f"bv{n}", "patient_key": pk, "practitioner_id": rng.choice(DOCTORS),
            "profession": rng.choice(["läkare", "läkare", "sjuksköterska"]), "care_unit_id": rng.choice(UNITS),
            "contact_type": "besok", "occurred_at": when.isoformat().replace("+00:00", "Z")}


async def main(args) -> dict:
    """The bench under topics and a database of its own, deleted afterwards."""
    async with Throwaway(InfraSettings(), "bench") as mine:
        return await run(args, mine)


async def run(args, mine: Throwaway) -> dict:
    infra = mine.settings
    bootstrap = infra.kafka_bootstrap
    prefix = mine.prefix
    await ensure_topics(bootstrap, prefix=prefix)
    rng = random.Random(1)
    keys = [key(i) for i in range(args.patients)]
    listings = []
    for i, pk in enumerate(keys):
        unit = UNITS[i % len(UNITS)]
        listings.append(make_record("listing.started.v1", {
            "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, pk)), "patient_key": pk, "care_unit_id": unit,
            "started_on": "2024-01-01", "responsibility_from": "2024-01-02", "origin": "active_choice",
            "initiated_by": "person"}, source="bench"))
    visits = [make_record("visit.recorded.v1", visit(rng, n, rng.choice(keys)), source="bench")
              for n in range(args.visits)]
    producer = new_producer(bootstrap, "bench")
    await producer.start()
    t = time.perf_counter()
    await publish_many(producer, listings, prefix)
    for i in range(0, len(visits), 20000):
        await publish_many(producer, visits[i:i + 20000], prefix)
    result: dict = {"visits": args.visits, "patients": args.patients, "publish_seconds": time.perf_counter() - t}
    print(f"published {args.visits} visits + {len(listings)} listings in {result['publish_seconds']:.1f}s", flush=True)
    # the same records under a prefix of their own for each further replay by the worker (b)
    run_prefixes = [prefix] + [f"{prefix}r{n}." for n in range(1, args.worker_runs)]
    for run_prefix in run_prefixes[1:]:
        await ensure_topics(bootstrap, prefix=run_prefix)
    for run_prefix in run_prefixes[1:]:
        await publish_many(producer, listings, run_prefix)
        for i in range(0, len(visits), 20000):
            await publish_many(producer, visits[i:i + 20000], run_prefix)

    # (a) faust: the naive agent (one table update per event), and faust's own ceiling (an agent
    # doing nothing), each in its own process and consumer group over the same visits
    for mode in () if args.only_worker else ("noop", "naive"):
        result_file = Path(tempfile.mkdtemp()) / f"{mode}.json"
        env = dict(os.environ, BENCH_PREFIX=f"{prefix}{mode}.", BENCH_TOPIC_PREFIX=prefix, BENCH_MODE=mode,
                   BENCH_EVENTS=str(args.visits), BENCH_RESULT=str(result_file), PYTHONPATH=str(ROOT))
        run = subprocess.run([sys.executable, str(ROOT / "bench/continuity/naive_faust.py"), "worker", "-l", "warn"],
                             env=env, capture_output=True, text=True, timeout=1800)
        if not result_file.exists():
            print(run.stdout[-2000:], run.stderr[-3000:])
            raise SystemExit(f"the faust {mode} agent did not finish")
        result.update(orjson.loads(result_file.read_bytes()))
    result["load_average_after_a"] = os.getloadavg()
    if not args.only_worker:
        print(f"(a) faust agent doing nothing (faust's ceiling): {result['noop_eps']:.0f} events/s; "
          f"naive faust agent: {result['naive_eps']:.0f} events/s; load average "
          f"{result['load_average_after_a'][0]:.1f}", flush=True)

    # (b) this worker, replaying the same listings and visits --worker-runs times (each under topics and
    # tables of its own: a replay takes ~5 s, against the naive agent's minute, so one replay's figure moves
    # with a moment's load; the median run is the figure, every run is reported)
    from tools.migrations import migrate

    dsn = await mine.database()
    await migrate(dsn)
    runs = []
    for n_run, run_prefix in enumerate(run_prefixes):
        figures, settings = await replay_with_worker(args, bootstrap, run_prefix, dsn, listings,
                                                     profile=args.profile and n_run == 0)
        runs.append(figures)
        print(f"(b) replay {n_run + 1}: {figures['worker_eps']:.0f} events/s, "
              f"{figures['worker_eps_cpu']:.0f} per CPU-second", flush=True)
    median = sorted(runs, key=lambda r: r["worker_eps"])[len(runs) // 2]
    result.update(median)
    result["worker_runs"] = runs
    prefix = run_prefixes[-1]  # (c) resumes the last replay's tables (its settings: the last loop's)
    print(f"(b) the worker's hot path: {result['hot_path']} (FLK_CONTINUITY_COMPILED_HOT_PATH=false: the pure module)",
          flush=True)
    if args.only_worker:
        print(f"(b) this worker (the median of {len(runs)} replays): {result['worker_eps']:.0f} events/s, "
              f"{result['worker_eps_cpu']:.0f} per CPU-second, {result['bytes_per_patient']:.0f} bytes of state "
              f"per patient; load average {result['load_average_after_b'][0]:.1f}", flush=True)
    else:
        report_ratios(result)

    from flk.security.tokens import Role, issue_token

    # (c) latency at 1 000 events/s, publish -> visible through the HTTP API, with the worker as
    # deployed: its own process (`flk continuity worker`), resuming from its RocksDB tables (no
    # replay), API served from the worker's loop; load and probes come from this process.
    import httpx

    port = free_port()
    env = dict(os.environ, FLK_KAFKA_BOOTSTRAP=bootstrap, FLK_TOPIC_PREFIX=prefix, FLK_DATABASE_URL=dsn,
               FLK_CONTINUITY_AS_OF="2026-03-15", FLK_CONTINUITY_STORE="rocksdb",
               FLK_CONTINUITY_DATA_DIR=str(settings.data_dir), FLK_CONTINUITY_HTTP_PORT=str(port),
               FLK_CONTINUITY_SNAPSHOT_ENABLED="false", FLK_CONTINUITY_BATCH_MAX_RECORDS=str(settings.batch_max_records))
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "continuity", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token = issue_token(settings.platform, "bench", Role.LISTING_ADMIN, [])
    latencies: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            if not await became_ready(client, timeout_s=60):
                raise SystemExit("the worker process did not become ready")

            async def probe(pk: str, published: float) -> None:
                while True:
                    r = await client.get(f"/patients/{pk}/continuity")
                    if r.status_code == 200 and r.json()["total"]["visits"] == 1:
                        latencies.append(time.perf_counter() - published)
                        return
                    await asyncio.sleep(0.02)  # each poll is an audited read: keep the probes' own load small

            # warm-up: "ready" answers before the consumer has joined its group and been assigned its
            # partitions; the clock starts once a first visit has gone all the way through
            n = args.visits + 1
            warm = key(10_000_000 + n)
            rec = make_record("visit.recorded.v1", visit(rng, n, warm, datetime(2026, 3, 10, 10, tzinfo=timezone.utc)),
                              source="bench")
            await producer.send_and_wait(prefix + rec.topic, value=rec.value, key=rec.key, headers=rec.headers)
            await asyncio.wait_for(probe(warm, time.perf_counter()), timeout=120)
            latencies.clear()

            probes = []
            rate, seconds = 1000, args.latency_seconds
            start, first_n = time.perf_counter(), n
            recent = datetime(2026, 3, 10, 10, tzinfo=timezone.utc)
            for tick in range(rate * seconds // 100):  # 100 events per 0.1 s
                batch = []
                for j in range(100):
                    n += 1
                    if j == 0:  # a probe: a new patient whose first visit must become visible
                        pk = key(10_000_000 + n)
                        batch.append((pk, make_record("visit.recorded.v1", visit(rng, n, pk, recent), source="bench")))
                    else:
                        batch.append((None, make_record("visit.recorded.v1", visit(rng, n, rng.choice(keys)),
                                                        source="bench")))
                for pk, rec in batch:
                    sent = time.perf_counter()
                    await producer.send(prefix + rec.topic, value=rec.value, key=rec.key, headers=rec.headers)
                    if pk:
                        probes.append(asyncio.create_task(probe(pk, sent)))
                delay = start + (tick + 1) * 0.1 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            result["offered_eps"] = (n - first_n) / (time.perf_counter() - start)
            await asyncio.wait_for(asyncio.gather(*probes), timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    latencies.sort()
    result.update(latency_samples=len(latencies), latency_p50_ms=1000 * latencies[len(latencies) // 2],
                  latency_p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
                  latency_max_ms=1000 * latencies[-1])
    print(f"(c) latency at {result['offered_eps']:.0f} events/s offered: p50 {result['latency_p50_ms']:.0f} ms, "
          f"p99 {result['latency_p99_ms']:.0f} ms ({len(latencies)} probes)", flush=True)
    await producer.stop()
    return result


async def replay_with_worker(args, bootstrap: str, prefix: str, dsn: str, listings: list, *,
                             profile: bool) -> tuple[dict, object]:
    """One replay of the listings and visits under ``prefix`` by a worker with tables of its own: the visits
    applied after the last listing, timed batch by batch. Returns its figures and the worker's settings."""
    from flk.settings import PlatformSettings
    from services.continuity.bootstrap import ContinuityWorker
    from services.continuity.settings import ContinuityServiceSettings

    settings = ContinuityServiceSettings(
        platform=PlatformSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, database_url=dsn),
        as_of=datetime(2026, 3, 15).date(), store="rocksdb", data_dir=Path(tempfile.mkdtemp()) / "continuity",
        api_enabled=False, metrics_port=None, snapshot_enabled=False,
        **({"batch_max_records": args.batch} if args.batch else {}))
    worker = ContinuityWorker(settings)
    total = args.visits + len(listings)
    profiler = cProfile.Profile() if profile else None

    def listings_applied() -> float:
        return worker.probe.registry.get_sample_value(
            "flk_continuity_events_processed_total", {"event_type": "listing.started.v1"}) or 0

    # The listings first: until every one is applied, the worker's fetch is limited to the listing topic
    # (the visits wait in its fetch buffer); then every visit is timed, batch by batch by the worker's loop
    # itself: a poller beside it sees a batch's end only at the next batch's first await (its commit), after
    # that batch was processed, and would count events it did not time. The same 200 000 visits whatever
    # the batch size; the group's join and the listings' reference path stay out of the figure.
    marks: list[tuple[float, float, float, float, int]] = []  # started, ended, cpu at both, events
    consume_batch = worker._consume_batch

    async def timed_batch() -> None:
        started, cpu, before, listed = time.perf_counter(), time.process_time(), worker.processed_events, \
            listings_applied()
        await consume_batch()
        if listed >= len(listings) and worker.processed_events > before:
            marks.append((started, time.perf_counter(), cpu, time.process_time(), worker.processed_events - before))

    worker._consume_batch = timed_batch
    await worker.start()
    listing_topic = prefix + listings[0].topic
    getmany = worker.consumer.getmany

    async def listings_first(*partitions, **options):
        if listings_applied() < len(listings):
            partitions = [tp for tp in worker.consumer.assignment() if tp.topic == listing_topic]
            if not partitions:  # (the group's join: not assigned yet)
                await asyncio.sleep(options.get("timeout_ms", 100) / 1000)
                return {}
        return await getmany(*partitions, **options)

    worker.consumer.getmany = listings_first
    while listings_applied() < len(listings):
        await asyncio.sleep(0.005)
    if args.only_worker:
        print("(b) the listings applied: the visits are timed from the next batch", flush=True)
    if profiler:
        profiler.enable()
    while worker.processed_events < total:
        await asyncio.sleep(0.005)
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(ROOT / "bench/continuity/worker.prof"))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    if not marks:
        raise SystemExit("no batch started after the listings were applied: raise --visits or lower --batch")
    if os.environ.get("BENCH_SHOW_BATCHES"):
        for m in marks:
            print(f"    batch: {m[4]} events in {m[1] - m[0]:.2f} s ({m[3] - m[2]:.2f} CPU-s)")
    measured = sum(m[4] for m in marks)
    elapsed, cpu = marks[-1][1] - marks[0][0], marks[-1][3] - marks[0][2]  # (this process is the worker here)
    patients, state_bytes = worker.processor.table_size()
    result = dict(worker_events=measured, worker_seconds=elapsed, worker_eps=measured / elapsed,
                  worker_cpu_seconds=cpu, worker_eps_cpu=measured / cpu, bytes_per_patient=state_bytes / patients,
                  load_average_after_b=os.getloadavg(), hot_path=worker.processor.hot_path)
    await worker.stop()  # closes the RocksDB tables: the deployed process in (c) reopens the last replay's
    return result, settings


def report_ratios(result: dict) -> None:
    result["ratio"] = result["worker_eps"] / result["naive_eps"]
    result["ratio_to_faust_ceiling"] = result["worker_eps"] / result["noop_eps"]
    result["ratio_cpu"] = result["worker_eps_cpu"] / result["naive_eps_cpu"]
    runs = result.get("worker_runs", [])
    if len(runs) > 1:
        print("(b) the worker's replays: " + ", ".join(
            f"{r['worker_eps']:.0f} events/s ({r['worker_eps'] / result['naive_eps']:.1f}x)" for r in runs)
            + "; the median is the figure", flush=True)
    print(f"(b) this worker: {result['worker_eps']:.0f} events/s ({result['ratio']:.1f}x naive, "
          f"{result['ratio_to_faust_ceiling']:.1f}x faust's ceiling), "
          f"{result['bytes_per_patient']:.0f} bytes of state per patient; load average "
          f"{result['load_average_after_b'][0]:.1f}", flush=True)
    print(f"    per CPU-second of the consuming process (less dependent on the machine's load): worker "
          f"{result['worker_eps_cpu']:.0f}, naive {result['naive_eps_cpu']:.0f} ({result['ratio_cpu']:.1f}x), "
          f"faust's ceiling {result['noop_eps_cpu']:.0f} events", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--visits", type=int, default=200_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=None,
                        help="records per batch (default: the worker's own, FLK_CONTINUITY_BATCH_MAX_RECORDS)")
    parser.add_argument("--latency-seconds", type=int, default=10)
    parser.add_argument("--worker-runs", type=int, default=3,
                        help="replays by the worker, each under topics and tables of its own: the median is the figure")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--only-worker", action="store_true",
                        help="no faust baseline and no ratios (for profiling the worker)")
    res = asyncio.run(main(parser.parse_args()))
    print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
