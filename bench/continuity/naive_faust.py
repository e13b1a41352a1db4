"""The naive design, for the benchmark: a faust agent doing one table update per event.

BENCH_MODE=noop instead runs a faust agent that does nothing with each event (raw bytes, no
table): faust's own per-event ceiling on this machine, the upper bound of any faust agent design.

Env: BENCH_PREFIX, BENCH_TOPIC_PREFIX, BENCH_MODE (naive|noop), BENCH_EVENTS, BENCH_RESULT (a file for
the JSON result), BENCH_STORE (memory://).
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
from services.continuity.adapters.state_codec import decode_state, encode_state
from services.continuity.domain.patient import EMPTY_STATE, Visit, record_visit
from services.continuity.domain.settings import ContinuitySettings

PREFIX = os.environ["BENCH_PREFIX"]  # the app id's (and consumer group's) prefix
TOPIC_PREFIX = os.environ.get("BENCH_TOPIC_PREFIX", PREFIX)  # where the visits are
N = int(os.environ["BENCH_EVENTS"])
VISITS = registry().topic_for("visit.recorded.v1").name
SETTINGS = ContinuitySettings()
AS_OF = date(2026, 3, 15)

app = faust.App(f"{PREFIX}naive", broker=os.environ.get("BENCH_BROKER", "kafka://127.0.0.1:19092"),
                store=os.environ.get("BENCH_STORE", "memory://"), web_enabled=False, topic_partitions=6,
                consumer_auto_offset_reset="earliest", broker_session_timeout=10,
                datadir=os.environ.get("BENCH_DATADIR", f"/tmp/flk-bench-naive-{os.getpid()}"))
topic = app.topic(TOPIC_PREFIX + VISITS, key_serializer="raw", value_serializer="raw")
table = app.Table("patients", default=None, partitions=6,
                  schema=faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"))
seen = {"n": 0, "t0": 0.0, "c0": 0.0}
MODE = os.environ.get("BENCH_MODE", "naive")


def finish() -> None:
    elapsed = time.perf_counter() - seen["t0"]
    cpu = time.process_time() - seen["c0"]  # this process's CPU (all its threads): less load-dependent
    result = orjson.dumps({f"{MODE}_events": N, f"{MODE}_seconds": elapsed, f"{MODE}_eps": N / elapsed,
                           f"{MODE}_cpu_seconds": cpu, f"{MODE}_eps_cpu": N / cpu})
    with open(os.environ["BENCH_RESULT"], "wb") as out:  # faust redirects stdout to its logger
        out.write(result)
    os._exit(0)


async def naive(stream):
    async for event in stream.events():
        if not seen["n"]:
            seen["t0"], seen["c0"] = time.perf_counter(), time.process_time()
        m = event.message
        env = read_record(VISITS, m.key, m.value, m.headers)
        d = env.data
        raw = table.get(m.key)
        state = EMPTY_STATE if raw is None else decode_state(raw)
        visit = Visit(d["visit_id"], d["practitioner_id"], d["profession"], d["care_unit_id"],
                      __import__("datetime").datetime.fromisoformat(d["occurred_at"]), m.offset, d.get("contact_type"))
        table[m.key] = encode_state(record_visit(state, visit, AS_OF, SETTINGS))  # one changelog write per event
        seen["n"] += 1
        if seen["n"] >= N:
            finish()


async def noop(stream):
    async for _event in stream.events():
        if not seen["n"]:
            seen["t0"], seen["c0"] = time.perf_counter(), time.process_time()
        seen["n"] += 1
        if seen["n"] >= N:
            finish()


app.agent(topic, name="bench-agent", concurrency=1)(noop if MODE == "noop" else naive)

if __name__ == "__main__":
    sys.argv[1:] = sys.argv[1:] or ["worker", "-l", "warn"]
    app.main()
