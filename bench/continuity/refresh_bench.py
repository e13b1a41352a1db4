"""The continuity worker's refresh when the date moves: the hot path against the reference way, in one run.

    python bench/continuity/refresh_bench.py [--patients 20000] [--visits 8] [--months 3] [--rounds 3]

Builds one partition of ``--patients`` listed patients with ``--visits`` visits each, spread over the
24 months before the first date (so a part has left the 18-month window three months later), then
times ``Processor.refresh_partition`` as the worker runs it at a restart ``--months`` later: with the
reference way only (decode, ``advance``, ``prune_residences``, indices, encode) and with the hot path
(on the record's bytes; its compiled twin where built: ``python -m tools.native build``). Both start
from the same stored records and must write the same bytes and events (checked). Prints the best of
``--rounds`` for each, the ratio and the load average.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flk.dates import add_months  # noqa: E402
from flk.events.envelope import make_record  # noqa: E402
from services.continuity.adapters.store import MemoryStore  # noqa: E402
from services.continuity.domain.settings import ContinuitySettings  # noqa: E402
from services.continuity.service_layer.processor import Processor  # noqa: E402
from tests.support.builders import a_patient_key  # noqa: E402
from tests.support.kafka import ConsumedRecord  # noqa: E402

FIRST = date(2025, 9, 6)


def load() -> str:
    return "load average %.1f %.1f %.1f" % os.getloadavg()


def inputs(patients: int, visits: int, seed: int = 1) -> list[ConsumedRecord]:
    rnd = random.Random(seed)
    records = []
    start = datetime(FIRST.year, FIRST.month, FIRST.day, 8, tzinfo=timezone.utc) - timedelta(days=730)
    for i in range(patients):
        key = a_patient_key(i + 1)
        unit = f"SE2321000016-VC{rnd.randrange(40):02d}"
        records.append(make_record("listing.started.v1", {
            "listing_id": f"00000000-0000-4000-8000-{i:012d}", "patient_key": key, "care_unit_id": unit,
            "started_on": "2023-01-01", "responsibility_from": "2023-01-01", "origin": "active_choice",
            "initiated_by": "person"}, source="bench/refresh"))
        for v in range(visits):
            at = start + timedelta(days=rnd.randrange(730))
            records.append(make_record("visit.recorded.v1", {
                "visit_id": f"v{i}-{v}", "patient_key": key, "practitioner_id": f"SE2321000016-L{rnd.randrange(400):04d}",
                "care_unit_id": unit, "profession": "läkare", "contact_type": "besok",
                "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, source="bench/refresh"))
    return [ConsumedRecord(r.topic, 0, n, r.key, r.value, tuple(r.headers)) for n, r in enumerate(records)]


def stored(records: list[ConsumedRecord]) -> MemoryStore:
    store = MemoryStore()
    processor = Processor(ContinuitySettings(), store, FIRST, hot_path=False)
    processor.open_partition(0)
    for k in range(0, len(records), 5_000):
        out = processor.process(records[k:k + 5_000])
        store.commit(0, out.writes.get(0, {}), out.offsets.get(0, {}))
    return store


def copy(store: MemoryStore) -> MemoryStore:
    other = MemoryStore()
    other.open(0)
    other.commit(0, dict(store.items(0)), store.offsets(0))
    return other


def refresh(store: MemoryStore, as_of: date, hot: bool):
    processor = Processor(ContinuitySettings(), store, as_of, hot_path=hot)
    processor.summaries[0], processor.sizes[0] = {}, {}
    started = time.perf_counter()
    out = processor.refresh_partition(0)
    return time.perf_counter() - started, out, processor.hot_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--visits", type=int, default=8)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    base = stored(inputs(args.patients, args.visits))
    as_of = add_months(FIRST, args.months)
    best: dict[bool, float] = {}
    for _ in range(args.rounds):
        outs = {}
        for hot in (False, True):
            seconds, out, how = refresh(copy(base), as_of, hot)
            best[hot] = min(best.get(hot, seconds), seconds)
            outs[hot] = (out.writes, [(r.key, r.value) for r in out.outgoing])
        assert outs[True] == outs[False], "the hot path wrote or emitted something else than the reference way"
    writes, events = outs[True]
    print(f"{args.patients} patients, {args.visits} visits each, refreshed {args.months} months on "
          f"({len(writes.get(0, {}))} records rewritten, {len(events)} indices events): {load()}")
    print(f"  reference way  {best[False]:6.2f} s")
    print(f"  hot path       {best[True]:6.2f} s   ({how})")
    print(f"  ratio          {best[False] / best[True]:6.2f}x")


if __name__ == "__main__":
    main()
