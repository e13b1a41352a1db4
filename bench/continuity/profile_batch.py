"""Where the continuity worker's batch path spends its time, without Kafka (cProfile).

    .venv/bin/python bench/continuity/profile_batch.py [VISITS]

Feeds Processor.process the same records the worker would read (built with make_record, so the
envelope decoding, validation, per-patient update, index recompute and outgoing records are all
in), in batches of 5 000, into a memory store; prints events/s (under the profiler) and the top
functions by own time.
"""
import cProfile, pstats, random, sys, time
from dataclasses import dataclass
from datetime import date
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from bench import key, visit
from flk.events.envelope import make_record
from services.continuity.adapters.store import MemoryStore
from services.continuity.service_layer.processor import Processor
from services.continuity.domain.settings import ContinuitySettings

@dataclass
class Rec:
    topic: str; partition: int; offset: int; key: bytes; value: bytes; headers: list

rng = random.Random(1); keys = [key(i) for i in range(5000)]
recs = []
for n in range(int(sys.argv[1]) if len(sys.argv) > 1 else 50000):
    r = make_record("visit.recorded.v1", visit(rng, n, rng.choice(keys)), source="bench")
    recs.append(Rec(r.topic, hash(r.key) % 6, n, r.key, r.value, tuple(r.headers)))
store = MemoryStore()
for p in range(6): store.open(p)
proc = Processor(ContinuitySettings(), store, date(2026, 3, 15))
for p in range(6): proc.summaries[p] = {}; proc.sizes[p] = {}
prof = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
t = time.process_time()
prof.enable()
for i in range(0, len(recs), 5000):
    out = proc.process(recs[i:i+5000])
    for p in set(out.writes) | set(out.offsets):
        store.commit(p, out.writes.get(p, {}), out.offsets.get(p, {}))
prof.disable()
el = time.process_time() - t
print(f"{len(recs)/el:.0f} events per CPU-second (profiled)")
pstats.Stats(prof).sort_stats("tottime").print_stats(22)
