"""Micro-benchmark: the notifier's per-patient state round trip (generic codec + json against the compiled
codec + orjson) and the two alert ids per open gap (uuid5 against remembered), in one process.

    python -m bench.notifier.codec_and_ids
"""
import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from services.notifier.adapters import state_codec as sc
from services.notifier.domain.care_gaps import FlkAssignedFact, ListingStartedFact, RiskAssessedFact, apply, initial_state
from services.notifier.domain.care_gaps import CarePolicy
import orjson
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
pol = CarePolicy()
states = []
for i in range(2000):
    k = f"pk{i:06d}"
    s = initial_state(k)
    for f in [ListingStartedFact(k, f"L{i}", "U1", T0), RiskAssessedFact(k, 4 + i % 2, T0 + timedelta(days=1)),
              FlkAssignedFact(k, f"A{i}", "U1", "list:x", T0 + timedelta(days=2), is_fictive=True)]:
        s, _ = apply(s, f, T0 + timedelta(days=200), pol)
    states.append(s)
def bench(enc, dec, dumps, loads):
    t = time.process_time()
    for _ in range(5):
        for s in states:
            dec(loads(dumps(enc(s))))
    return (time.process_time() - t) / (5 * len(states)) * 1e6
old = bench(sc._encode, lambda r: sc._decode(sc.PatientCareState, r), lambda o: json.dumps(o, separators=(",", ":")), json.loads)
new = bench(sc.encode_state, sc.decode_state, lambda o: orjson.dumps(o).decode(), orjson.loads)
print(f"state round trip: generic+json {old:.1f} µs, compiled+orjson {new:.1f} µs ({old/new:.1f}x); load {os.getloadavg()[0]:.1f}")
from services.notifier.domain import alerts as al
gaps = [uuid.uuid4() for _ in range(20000)]
t = time.process_time()
for g in gaps: al.alert_id_for_new_gap.__wrapped__("U1", g); al.alert_id_for_escalated_gap.__wrapped__("U1", g)
a = time.process_time() - t
for g in gaps: al.alert_id_for_new_gap("U1", g); al.alert_id_for_escalated_gap("U1", g)
t = time.process_time()
for g in gaps: al.alert_id_for_new_gap("U1", g); al.alert_id_for_escalated_gap("U1", g)
b = time.process_time() - t
print(f"two alert ids per open gap: uuid5 {a/len(gaps)*1e6:.1f} µs, remembered {b/len(gaps)*1e6:.1f} µs ({a/b:.0f}x)")
