"""The naive design, for the benchmark: a faust agent doing one table update per event.

Env: BENCH_PREFIX, BENCH_EVENTS, BENCH_STORE (memory://). Prints one JSON line with events/s.
Run: python bench/continuity/naive_faust.py worker -l warn
"""
from __future__ import annotations

import os
import sys
import time
from datetime import date

import faust
import orjson

from flk.events.envelope import read_record
from flk.events.registry import registry
from services.continuity.domain.codec import decode_state, encode_state
from services.continuity.domain.patient import EMPTY_STATE, Visit, record_visit
from services.continuity.domain.settings import ContinuitySettings

PREFIX = os.environ["BENCH_PREFIX"]
N = int(os.environ["BENCH_EVENTS"])
VISITS = registry().topic_for("visit.recorded.v1").name
SETTINGS = ContinuitySettings()
AS_OF = date(2026, 3, 15)

app = faust.App(f"{PREFIX}naive", broker=os.environ.get("BENCH_BROKER", "kafka://127.0.0.1:19092"),
                store=os.environ.get("BENCH_STORE", "memory://"), web_enabled=False, topic_partitions=6,
                consumer_auto_offset_reset="earliest", broker_session_timeout=10,
                datadir=os.environ.get("BENCH_DATADIR", f"/tmp/flk-bench-naive-{os.getpid()}"))
topic = app.topic(PREFIX + VISITS, key_serializer="raw", value_serializer="raw")
table = app.Table("patients", default=None, partitions=6,
                  schema=faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"))
seen = {"n": 0, "t0": 0.0}


@app.agent(topic, concurrency=1)
async def naive(stream):
    async for event in stream.events():
        if not seen["n"]:
            seen["t0"] = time.perf_counter()
        m = event.message
        env = read_record(VISITS, m.key, m.value, m.headers)
        d = env.data
        raw = table[m.key]
        state = EMPTY_STATE if raw is None else decode_state(raw)
        visit = Visit(d["visit_id"], d["practitioner_id"], d["profession"], d["care_unit_id"],
                      __import__("datetime").datetime.fromisoformat(d["occurred_at"]), m.offset, d.get("contact_type"))
        table[m.key] = encode_state(record_visit(state, visit, AS_OF, SETTINGS))  # one changelog write per event
        seen["n"] += 1
        if seen["n"] >= N:
            elapsed = time.perf_counter() - seen["t0"]
            print(orjson.dumps({"naive_events": N, "naive_seconds": elapsed, "naive_eps": N / elapsed}).decode(),
                  flush=True)
            os._exit(0)


if __name__ == "__main__":
    sys.argv[1:] = sys.argv[1:] or ["worker", "-l", "warn"]
    app.main()
