"""Where the simulated stream goes: files (JSONL + CSV), Kafka, or nowhere (benchmarks).

Files (``--to files --out DIR``), all UTF-8 with ``\\n`` line ends, byte-identical for the same
simulation:

* ``<topic>.jsonl`` for every topic that gets events: one ``{"type", "time", "data"}`` object a
  line (CloudEvents type, the simulation time, the event data that passes its contract);
* ``VISITS.csv`` — ``patient_id, visit_id, practitioner_id, profession, care_unit_id,
  occurred_at, contact_type`` (later-cancelled visits left out), for ``flk continuity indices``;
* ``LISTINGS.csv`` — ``patient_id, care_unit_id, fast_lakarkontakt_id`` at the end date (the
  listing facts the listing service would reach; empty FLK for none or a fictive list);
* ``listing_extract.csv`` — ``personnummer, care_unit_id, doctor_id, doctor_employment_type``,
  the listing state at the START (a FLISA-style migration extract for ``flk listing import``).
  The only file with (synthetic) personnummer. ``listing_extract_violations.csv`` is the answer
  key: ``row`` (1-based data row) and ``violation`` for the deliberate rule violations;
* ``units.csv`` and ``lists.csv`` — units and doctor/fictive lists (no contract event carries
  them); ``summary.json`` — the simulation summary (deterministic: no timings).

Patient ids in every file but the extract are the pseudonymous patient keys.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson

from flk.events.connection import PLAINTEXT, KafkaConnection
from flk.events.contracts import cloudevents_type
from flk.events.registry import registry
from flk.progress import StatusLine
from tools.simulator.generate import SIM_PREFIX, Emitted, Simulation, iso_time

VISIT_COLUMNS = ("patient_id", "visit_id", "practitioner_id", "profession", "care_unit_id", "occurred_at",
                 "contact_type")
LISTING_COLUMNS = ("patient_id", "care_unit_id", "fast_lakarkontakt_id")
EXTRACT_COLUMNS = ("personnummer", "care_unit_id", "doctor_id", "doctor_employment_type")
UNIT_COLUMNS = ("care_unit_id", "name", "municipality_code", "region_code", "relies_on_locums")
LIST_COLUMNS = ("list_id", "care_unit_id", "display_name", "list_kind", "role_id", "practitioner_id")


class Progress:
    """The simulation's progress on stderr (flk.progress): a bar with the simulation clock, events and
    rate on a terminal, redrawn a few times a second; a plain line every 10 s in a log."""

    def __init__(self, sim: Simulation, enabled: bool, stream: IO[str] | None = None, every_s: float = 0.25,
                 terminal: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.sim = sim
        self.enabled = enabled
        self.count = 0
        self.clock = clock
        self.started = clock()
        self.status = StatusLine(enabled=enabled, stream=stream, terminal=terminal, bar=True, refresh_s=every_s,
                                 clock=clock)

    def tick(self, n: int = 1) -> None:
        self.count += n
        if self.enabled and self.status.due():
            self._update()

    def _update(self, force: bool = False) -> None:
        fraction = self.sim.progress()
        rate = self.count / max(self.clock() - self.started, 1e-9)
        text = f"sim {self.sim.clock()} | {self.count:,} events | {rate:,.0f}/s"
        if not self.status.terminal:
            text = f"{fraction * 100:5.1f}% {text}"
        self.status.update(text, fraction, force=force)

    def done(self) -> None:
        if self.enabled:
            self._update()
        self.status.close()


def _csv(path: Path, header: Iterable[str]):
    handle = path.open("w", encoding="utf-8", newline="")
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    return handle, writer


class FileSink:
    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._jsonl: dict[str, IO[bytes]] = {}
        self._topic_of: dict[str, str] = {}
        self._files: list[IO[str]] = []
        self._voided: set[str] = set()
        self._extract_rows = 0
        self.visits, self._visits_w = self._open("VISITS.csv", VISIT_COLUMNS)
        self.listings, self._listings_w = self._open("LISTINGS.csv", LISTING_COLUMNS)
        self.extract, self._extract_w = self._open("listing_extract.csv", EXTRACT_COLUMNS)
        self.violations, self._violations_w = self._open("listing_extract_violations.csv", ("row", "violation"))
        self.units, self._units_w = self._open("units.csv", UNIT_COLUMNS)
        self.lists, self._lists_w = self._open("lists.csv", LIST_COLUMNS)

    def _open(self, name: str, header: Iterable[str]):
        handle, writer = _csv(self.out / name, header)
        self._files.append(handle)
        return handle, writer

    def write(self, item: Emitted) -> None:
        event_type, data, at = item
        if event_type.startswith(SIM_PREFIX):
            self._write_fact(event_type, data)
            return
        topic = self._topic_of.get(event_type)
        if topic is None:
            topic = self._topic_of[event_type] = registry().topic_for(event_type).name
            if topic not in self._jsonl:  # several event types share a topic
                self._jsonl[topic] = (self.out / f"{topic}.jsonl").open("wb")
        self._jsonl[topic].write(
            orjson.dumps({"type": cloudevents_type(event_type), "time": iso_time(at), "data": data}) + b"\n")
        if event_type == "visit.recorded.v1":
            if data["visit_id"] in self._voided:
                self._voided.discard(data["visit_id"])
            else:
                self._visits_w.writerow((data["patient_key"], data["visit_id"], data["practitioner_id"],
                                         data["profession"], data["care_unit_id"], data["occurred_at"],
                                         data["contact_type"]))

    def _write_fact(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type == "sim.visit_voided":
            self._voided.add(data["visit_id"])
        elif event_type == "sim.listing_fact":
            self._listings_w.writerow((data["patient_id"], data["care_unit_id"], data["fast_lakarkontakt_id"]))
        elif event_type == "sim.extract_row":
            self._extract_rows += 1
            self._extract_w.writerow((data["personnummer"], data["care_unit_id"], data["doctor_id"],
                                      data["doctor_employment_type"]))
            if data["violation"]:
                self._violations_w.writerow((self._extract_rows, data["violation"]))
        elif event_type == "sim.unit":
            self._units_w.writerow(tuple(data[c] for c in UNIT_COLUMNS))
        elif event_type == "sim.list":
            self._lists_w.writerow(tuple(data[c] for c in LIST_COLUMNS))

    def close(self, summary: dict[str, Any] | None = None) -> None:
        for handle in self._jsonl.values():
            handle.close()
        for handle in self._files:
            handle.close()
        if summary is not None:
            (self.out / "summary.json").write_bytes(
                orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def write_files(sim: Simulation, out: Path, progress: Progress | None = None) -> None:
    sink = FileSink(out)
    try:
        for item in sim.stream():
            sink.write(item)
            if progress is not None:
                progress.tick()
    finally:
        sink.close(sim.summary.as_dict())


def consume(sim: Simulation, progress: Progress | None = None) -> None:
    """Generate and drop (for measuring generation speed)."""
    for _ in sim.stream():
        if progress is not None:
            progress.tick()


async def publish(
    sim: Simulation,
    bootstrap: str,
    topic_prefix: str = "",
    rate: float | None = None,
    batch_size: int = 1_000,
    progress: Progress | None = None,
    items: Iterator[Emitted] | None = None,
    sleep: Callable[[float], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    connection: KafkaConnection = PLAINTEXT,
    writers: Mapping[str, KafkaConnection] | None = None,
) -> int:
    """Publish the contract events (``make_record`` + ``publish_many`` in batches); return the count.

    ``writers`` plays each external system as itself on a cluster with ACLs: the events of a topic whose
    registry writer (``ehr``, ``region``, ...) has a connection there go through a producer of its own
    with that connection; the others through one producer with ``connection``.

    ``rate`` paces to at most that many events per second (real-time mode); without it the
    stream is fast-forwarded. The CloudEvents ``time`` is the simulation clock. ``sleep`` and
    ``clock`` are seams for tests.
    """
    import asyncio

    from flk.events.envelope import make_record
    from flk.events.producer import new_producer, publish_many

    sleep = sleep or asyncio.sleep
    if rate is not None:
        batch_size = max(1, min(batch_size, int(rate // 10) or 1))
    writers = writers or {}
    producers: dict[str | None, Any] = {}

    async def flush(records: list) -> None:
        by_writer: dict[str | None, list] = {}
        for record in records:  # one writer per topic: a topic's records stay in order
            writer = registry().topic(record.topic).writer
            by_writer.setdefault(writer if writer in writers else None, []).append(record)
        for writer, group in by_writer.items():
            if writer not in producers:
                producers[writer] = new_producer(bootstrap, client_id=f"flk-simulator-{writer or 'all'}",
                                                 connection=writers[writer] if writer else connection)
                await producers[writer].start()
            await publish_many(producers[writer], group, topic_prefix)

    sent = 0
    started = clock()
    source = sim.source
    batch = []
    try:
        for item in items if items is not None else sim.stream():
            event_type, data, at = item
            if progress is not None:
                progress.tick()
            if event_type.startswith(SIM_PREFIX):
                continue
            batch.append(make_record(event_type, data, source=source,
                                     time=datetime.fromtimestamp(at, tz=timezone.utc)))
            if len(batch) >= batch_size:
                await flush(batch)
                sent += len(batch)
                batch = []
                if rate:
                    ahead = sent / rate - (clock() - started)
                    if ahead > 0:
                        await sleep(ahead)
        if batch:
            await flush(batch)
            sent += len(batch)
    finally:
        for producer in producers.values():
            await producer.stop()
    return sent
