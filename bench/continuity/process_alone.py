"""`Processor.process` alone, as bench.py's replay (b) feeds it, without Kafka: CPU-seconds of this process.

    .venv/bin/python bench/continuity/process_alone.py [--patients 20000] [--visits 200000] [--rounds 3]
    FLK_BENCH_ROOT=/path/to/another/checkout .venv/bin/python bench/continuity/process_alone.py   # its code

20 000 listings, then 200 000 visits over the patients in batches of 50 000, split by partition as the
worker splits them, into a memory store; the headers as aiokafka's consumer gives them (a tuple) and the
cyclic collector as the worker runs it (off within a batch, `flk.collector`). Prints visits per CPU-second
for each round. With ``FLK_BENCH_ROOT`` the code of another checkout (e.g. a `git worktree` of an earlier
commit, its compiled twins built there) runs instead: alternate the two for an A/B on a noisy machine.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import date
from pathlib import Path

ROOT = Path(os.environ.get("FLK_BENCH_ROOT") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT / "bench/continuity"))
sys.path.insert(0, str(ROOT))

from bench import UNITS, key, visit  # noqa: E402
from flk.collector import BatchCollector, freeze_what_lives  # noqa: E402
from flk.events.envelope import make_record  # noqa: E402
from services.continuity.adapters.store import MemoryStore  # noqa: E402
from services.continuity.domain.settings import ContinuitySettings  # noqa: E402
from services.continuity.service_layer.processor import Processor  # noqa: E402
from tests.support.kafka import ConsumedRecord  # noqa: E402

PARTITIONS = 12


def consumed(record, offset: int) -> ConsumedRecord:
    return ConsumedRecord(record.topic, hash(record.key) % PARTITIONS, offset, record.key, record.value,
                          tuple(record.headers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--visits", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(1)
    keys = [key(i) for i in range(args.patients)]
    listings = [consumed(make_record("listing.started.v1", {
        "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, pk)), "patient_key": pk, "care_unit_id": UNITS[i % 3],
        "started_on": "2024-01-01", "responsibility_from": "2024-01-02", "origin": "active_choice",
        "initiated_by": "person"}, source="bench"), i) for i, pk in enumerate(keys)]
    visits = [consumed(make_record("visit.recorded.v1", visit(rng, n, rng.choice(keys)), source="bench"), n)
              for n in range(args.visits)]
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
