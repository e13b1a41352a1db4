"""`Processor.process` alone, as bench.py's replay (b) feeds it, without Kafka: CPU-seconds of this process.

    .venv/bin/python bench/continuity/process_alone.py [--patients 20000] [--visits 200000] [--rounds 3]
    FLK_BENCH_ROOT=/path/to/another/checkout .venv/bin/python bench/continuity/process_alone.py   # its code

The batch path bench's records (`batch_path.records`: 20 000 listings, then 200 000 visits over the patients),
in batches of 50 000, each on its patient's partition as the
worker splits them, into a memory store; the headers as aiokafka's consumer gives them (a tuple) and the
cyclic collector as the worker runs it (off within a batch, `flk.collector`). Prints visits per CPU-second
for each round. With ``FLK_BENCH_ROOT`` the code of another checkout (e.g. a `git worktree` of an earlier
commit, its compiled twins built there) runs instead: alternate the two for an A/B on a noisy machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(os.environ.get("FLK_BENCH_ROOT") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT / "bench/continuity"))
sys.path.insert(0, str(ROOT))

from batch_path import records  # noqa: E402
from flk.collector import BatchCollector, freeze_what_lives  # noqa: E402
from services.continuity.adapters.store import MemoryStore  # noqa: E402
from services.continuity.domain.settings import ContinuitySettings  # noqa: E402
from services.continuity.service_layer.processor import Processor  # noqa: E402

PARTITIONS = 12


def by_patient(record):
    """The record on its patient's partition (as the topic's key partitions it), its headers a tuple as a
    consumer gives them."""
    return replace(record, partition=zlib.crc32(record.key) % PARTITIONS, headers=tuple(record.headers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--visits", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    made = [by_patient(r) for r in records(args.visits, args.patients)]  # the batch path bench's records
    listings, visits = made[:args.patients], made[args.patients:]
    freeze_what_lives()
    collector = BatchCollector()
    print(f"code: {ROOT}", flush=True)
    for _ in range(args.rounds):
        store = MemoryStore()
        processor = Processor(ContinuitySettings(), store, date(2026, 3, 15))
        for p in range(PARTITIONS):
            store.open(p)
            processor.summaries[p], processor.sizes[p] = {}, {}

        def feed(records) -> None:
            by_partition: dict[int, list] = {}
            for r in records:
                by_partition.setdefault(r.partition, []).append(r)
            for p, part in by_partition.items():
                out = processor.process(part)
                store.commit(p, out.writes.get(p, {}), out.offsets.get(p, {}))

        feed(listings)
        started = time.process_time()
        for i in range(0, len(visits), 50_000):
            with collector.batch():
                feed(visits[i:i + 50_000])
        print(f"{len(visits) / (time.process_time() - started):.0f} visits per CPU-second "
              f"(hot path: {processor.hot_path})", flush=True)


if __name__ == "__main__":
    main()
