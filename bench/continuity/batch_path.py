"""The continuity worker's batch path without Kafka, three ways in one run (events per CPU-second).

    .venv/bin/python bench/continuity/batch_path.py [--visits 100000] [--patients 20000] [--rounds 2]

Feeds ``Processor.process`` the records the worker would read (listings first, then visits spread
uniformly over the patients, as bench.py publishes them), in batches of 5 000, into a memory store:

- ``reference``: the reference way only (orjson + the compiled JSON Schema per event; decode the record,
  the pure handlers and ``compute_indices``, encode) — the batch path as it was before the hot path;
- ``typed``: + the typed decoding of visits (flk/events/typed.py);
- ``hot``: + visits applied to the encoded record (service_layer/hot_visits.py) — the worker as it runs.

The variants alternate for ``--rounds`` rounds and are timed in CPU seconds of this process, which the
machine's load moves much less than wall time (the machine is shared); ratios are within one run.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import UNITS, key, visit  # noqa: E402
from flk.events import typed  # noqa: E402
from flk.events.envelope import make_record  # noqa: E402
from services.continuity.adapters.store import MemoryStore  # noqa: E402
from services.continuity.domain.settings import ContinuitySettings  # noqa: E402
from services.continuity.service_layer.processor import Processor  # noqa: E402
from tests.support.kafka import ConsumedRecord  # noqa: E402


def records(visits: int, patients: int) -> list[ConsumedRecord]:
    rng = random.Random(1)
    keys = [key(i) for i in range(patients)]
    made = [make_record("listing.started.v1", {
        "listing_id": str(uuid.uuid5(uuid.NAMESPACE_URL, pk)), "patient_key": pk, "care_unit_id": UNITS[i % 3],
        "started_on": "2024-01-01", "responsibility_from": "2024-01-02", "origin": "active_choice",
        "initiated_by": "person"}, source="bench") for i, pk in enumerate(keys)]
    made += [make_record("visit.recorded.v1", visit(rng, n, rng.choice(keys)), source="bench") for n in range(visits)]
    return [ConsumedRecord(r.topic, i % 6, i, r.key, r.value, tuple(r.headers)) for i, r in enumerate(made)]


def run(recs: list[ConsumedRecord], *, hot: bool) -> tuple[float, MemoryStore]:
    store = MemoryStore()
    processor = Processor(ContinuitySettings(), store, date(2026, 3, 15), hot_path=hot)
    for p in range(6):
        processor.open_partition(p)
    started = time.process_time()
    for i in range(0, len(recs), 5000):
        out = processor.process(recs[i:i + 5000])
        assert not out.dead
        for p in set(out.writes) | set(out.offsets):
            store.commit(p, out.writes.get(p, {}), out.offsets.get(p, {}))
    return time.process_time() - started, store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    recs = records(args.visits, args.patients)
    decoders = dict(typed._DECODERS)
    seconds: dict[str, list[float]] = {"reference": [], "typed": [], "hot": []}
    states = {}
    for _ in range(args.rounds):
        for name in seconds:
            typed._DECODERS.clear()
            if name != "reference":
                typed._DECODERS.update(decoders)
            cpu, store = run(recs, hot=name == "hot")
            seconds[name].append(cpu)
            states[name] = store._data
    assert states["hot"] == states["reference"], "the hot path wrote other bytes than the reference"
    best = {name: len(recs) / min(s) for name, s in seconds.items()}
    print(f"{len(recs)} events ({args.visits} visits, {args.patients} listings/patients), {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, eps in best.items():
        print(f"  {name:9s} {eps:8.0f} events per CPU-second  ({eps / best['reference']:.2f}x reference)")
    print("  the table bytes written by 'hot' and 'reference' are identical")


if __name__ == "__main__":
    main()
