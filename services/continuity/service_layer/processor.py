"""The stream processor: batches of input records in, state writes + outgoing events out.

No Kafka client in here (the worker owns those), so the whole batch path is testable with
plain records. Per batch:

1. decode + validate each record (``flk.events.envelope.read_event``, the usual record through
   ``usual_reader`` first, which gives the same); invalid ones
   become dead letters with the shared consumer's reasons and categories;
2. group the valid events by (partition, patient key), in offset order;
3. per patient: decode the record once, apply every event (pure handlers), compute the
   indices once, encode once (**per-key coalescing**: N events for a patient in a batch
   cost one decode, one recompute, one encode and one store write); a patient whose batch holds only
   visits, listing starts, FLK assignments and risk assessments is updated on the encoded record itself
   (``hot_visits.py``: the same bytes, events and summary as the reference way, property-tested),
   anything else goes the reference way;
4. an ``indices_changed`` event only when the indices (or the listing unit) differ from the
   last one emitted for the patient (a fingerprint kept in the record).

The caller publishes the outgoing events and dead letters, then commits the writes and
the next offsets to the store atomically, then commits the consumer group's offsets.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from hashlib import blake2b
from typing import Any, Protocol

import orjson

from flk.events.contracts import ContractViolation
from flk.events.dlq import FailedMessage
from flk.events.envelope import (
    EnvelopeError, OutgoingRecord, TrustedWriter, derived_id, read_event, usual_reader, uuid5_text,
    wrap_trusted_record,
)
from flk.native import Chosen, twin
from services.continuity.domain.indices import IndexSet
from services.continuity.domain.patient import PatientIndices, advance, compute_indices
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.domain.window import window_bounds

from .aggregates import AggregateRow, PatientRow, Summary, aggregate, patient_rows
from .handlers import HANDLERS, effective_day, prune_residences
from . import hot_visits
from .hot_visits import HOT_FACTS, HotResult
from .record import EMPTY_RECORD, PatientRecord, decode_record, encode_record

SOURCE = "flk/continuity"
INDICES_EVENT = "continuity.indices_changed.v1"
VISIT_EVENT = "visit.recorded.v1"
#: Kept with a partition's input offsets (committed atomically with its state): the latest date (as an
#: ordinal) of the facts that state has applied — a visit's, a listing's, an FLK assignment's date
#: (``handlers.EFFECTIVE_DATE_FIELDS``). A state that holds facts from after a day is not that day's
#: state (later listing units, FLKs, visits), so the worker writes no snapshot of that day from it.
#: Facts dated before the day that arrive late do not block it: that day's figures include them.
KNOWN_UNTIL = "@known-until"


class InputRecord(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any


@dataclass
class DeadLetterItem:
    message: FailedMessage
    reason: str
    category: str  # 'envelope' | 'contract' | 'handler' (as the shared consumer)


@dataclass
class BatchOutcome:
    outgoing: list[OutgoingRecord] = field(default_factory=list)
    dead: list[DeadLetterItem] = field(default_factory=list)
    writes: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    offsets: dict[int, dict[str, int]] = field(default_factory=dict)
    processed: dict[str, int] = field(default_factory=dict)
    events: int = 0
    seconds: float = 0.0


#: ``Summary(fields…)`` without namedtuple's Python-level ``__new__`` (a patient's summary, each batch)
_made = tuple.__new__


def fingerprint(unit: str | None, indices: PatientIndices) -> int:
    raw = orjson.dumps((unit, tuple(indices.doctor), tuple(indices.total)))
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "little") or 1


def _failed(rec: InputRecord) -> FailedMessage:
    return FailedMessage(rec.topic, rec.partition, rec.offset, rec.key, rec.value, tuple(rec.headers or ()))


class Processor:
    def __init__(self, settings: ContinuitySettings, store, as_of: date, *, topic_prefix: str = "",
                 region_id: str = "00", hot_path: bool = True, compiled: bool = True) -> None:
        self.settings = settings
        #: visits applied to the encoded records (hot_visits.py, its compiled twin where built and current:
        #: flk.native); hot_path=False: the reference way only, compiled=False: the pure module (tests)
        chosen = twin(hot_visits) if compiled else Chosen(hot_visits, False, "pure Python")
        self.hot_path = chosen.why if hot_path else "reference only"
        self._hot = chosen.module.HotVisits(settings) if hot_path else None
        self._writer = TrustedWriter(INDICES_EVENT, SOURCE)
        self.store = store
        self.as_of = as_of
        self.prefix = topic_prefix
        self.region_id = region_id
        self.summaries: dict[int, dict[bytes, Summary]] = {}
        self.sizes: dict[int, dict[bytes, int]] = {}
        self._known_until: dict[int, int] = {}  # partition -> date ordinal (see KNOWN_UNTIL)
        #: filial -> main unit, from the unit register (seed 004): a visit at a filial counts as one at
        #: its main unit (SKR's "visits at the listing unit"); see set_unit_families
        self.unit_families: dict[str, str] = {}

    # ------------------------------------------------------------------ partitions

    def open_partition(self, partition: int) -> BatchOutcome:
        """Open a partition's table and bring every patient in it up to ``as_of``."""
        self.store.open(partition)
        self.summaries[partition] = {}
        self.sizes[partition] = {}
        return self.refresh_partition(partition)

    def close_partition(self, partition: int) -> None:
        self.summaries.pop(partition, None)
        self.sizes.pop(partition, None)
        self._known_until.pop(partition, None)
        self.store.close(partition)

    def _partition_known_until(self, partition: int) -> int:
        known = self._known_until.get(partition)
        if known is None:
            known = self._known_until[partition] = self.store.offsets(partition).get(KNOWN_UNTIL, 0)
        return known

    def known_until(self) -> date | None:
        """The latest fact date any open partition's state holds (None: no dated fact). A snapshot of an
        earlier day is not computable from this state."""
        latest = max((self._partition_known_until(p) for p in self.store.partitions), default=0)
        return date.fromordinal(latest) if latest else None

    # ------------------------------------------------------------------ the batch path

    def process(self, records: Iterable[InputRecord]) -> BatchOutcome:
        started = time.perf_counter()
        out = BatchOutcome()
        open_partitions = self.store.partitions
        prefix_len = len(self.prefix)
        grouped: dict[tuple[int, bytes], list[tuple[str, dict, int, InputRecord]]] = {}
        processed = out.processed
        latest: dict[int, str] = {}  # partition -> the latest fact date (ISO) in this batch
        read_usual = usual_reader()
        for rec in records:
            partition = rec.partition
            if partition not in open_partitions:
                continue  # revoked while the batch was in flight: its new owner reads it
            topic = rec.topic[prefix_len:]
            offsets = out.offsets.get(partition)
            if offsets is None:
                offsets = out.offsets[partition] = {}
            offsets[topic] = rec.offset + 1
            out.events += 1
            usual = read_usual(topic, rec.key, rec.value, rec.headers)
            if usual is not None:  # (what read_event gives for it: flk.events.usual)
                event_type, data = usual[1], usual[5]
            else:
                try:
                    event_type, data = read_event(topic, rec.key, rec.value, rec.headers or ())
                except (EnvelopeError, ContractViolation) as exc:
                    category = "envelope" if isinstance(exc, EnvelopeError) else "contract"
                    out.dead.append(DeadLetterItem(_failed(rec), str(exc), category))
                    continue
            processed[event_type] = processed.get(event_type, 0) + 1
            day = effective_day(event_type, data)
            if day is not None and day > latest.get(partition, ""):
                latest[partition] = day
            group = grouped.get((partition, rec.key))
            if group is None:
                group = grouped[(partition, rec.key)] = []
            group.append((event_type, data, rec.offset, rec))
        as_of = self.as_of
        settings = self.settings
        hot = self._hot
        families = self.unit_families
        fingerprint_of = fingerprint
        store_get = self.store.get
        stamp = self._writer.stamp(datetime.now(timezone.utc))
        for (partition, key), events in grouped.items():
            raw = store_get(partition, key)
            if hot is not None:
                visits: list[tuple[dict, int]] = []
                facts: list[tuple[str, dict]] = []
                for event in events:
                    if event[0] == VISIT_EVENT:
                        visits.append((event[1], event[2]))
                    elif event[0] in HOT_FACTS:
                        facts.append((event[0], event[1]))
                    else:
                        break
                else:
                    result = hot.apply(raw, visits, as_of, families, fingerprint_of, facts)
                    if result is not None:
                        self._finish_hot(partition, key, result, out, stamp)
                        continue
            before = record = EMPTY_RECORD if raw is None else decode_record(raw)
            for event_type, data, offset, rec in events:
                try:
                    record = HANDLERS[event_type](record, data, offset, as_of, settings)
                except Exception as exc:  # noqa: BLE001 - a bug or an unusable value: dead-letter, go on
                    out.dead.append(DeadLetterItem(_failed(rec), f"handler failed: {type(exc).__name__}",
                                                   "handler"))
            self._finish(partition, key, raw is None, before, record, out)
        for partition, day in latest.items():
            try:
                ordinal = date.fromisoformat(day).toordinal()
            except ValueError:  # not a date: the handler dead-letters or ignores such an event
                continue
            if ordinal > self._partition_known_until(partition):
                self._known_until[partition] = ordinal
                out.offsets[partition][KNOWN_UNTIL] = ordinal
        out.seconds = time.perf_counter() - started
        return out

    def _finish_hot(self, partition: int, key: bytes, result: HotResult, out: BatchOutcome, stamp: bytes) -> None:
        """`_finish` for the hot path's result (the same writes, events and summary)."""
        unit = result.unit
        indices = result.indices
        if result.emit:
            out.outgoing.append(self._indices_record(key.decode(), unit, indices, result.fingerprint, stamp))
        doctor, total = indices.doctor, indices.total
        self.summaries[partition][key] = _made(Summary, (
            unit, result.doctor_key, result.sabo_cohort, doctor.eligible and unit is not None, doctor.coc,
            total.eligible and unit is not None, total.coc, result.rub45))
        value = result.value
        if value is not None:
            writes = out.writes.get(partition)
            if writes is None:
                writes = out.writes[partition] = {}
            writes[key] = value
            self.sizes[partition][key] = len(value)

    def _finish(self, partition: int, key: bytes, new: bool, before: PatientRecord, record: PatientRecord,
                out: BatchOutcome) -> None:
        """Recompute, emit if changed, stage the write (only if something changed)."""
        indices = compute_indices(record.state, self.as_of, self.settings, self.unit_families)
        unit = record.state.listing_unit_id
        fp = fingerprint(unit, indices)
        if fp != record.fingerprint:
            out.outgoing.append(self.indices_record(key.decode(), unit, indices, fp))
            record = replace(record, fingerprint=fp)
        self.summaries[partition][key] = Summary(
            unit, record.doctor_key(), record.sabo_cohort_on(self.as_of),
            indices.doctor.eligible and unit is not None, indices.doctor.coc,
            indices.total.eligible and unit is not None, indices.total.coc, record.rub45(),
        )
        if new or record is not before:
            try:
                value = encode_record(record)
            except ValueError:  # beyond the codec's per-patient limits: keep the old state
                return
            writes = out.writes.get(partition)
            if writes is None:
                writes = out.writes[partition] = {}
            writes[key] = value
            self.sizes[partition][key] = len(value)

    def indices_record(self, patient_key: str, unit: str | None, indices: PatientIndices,
                       fp: int | None = None) -> OutgoingRecord:
        """The ``indices_changed`` event. Its id is a uuid5 of the patient, the date and the indices'
        fingerprint (= of its content: a replay gives the same id). Not schema-checked per event:
        tests check every event the processor produces (test_continuity_processor_output.py)."""
        as_of, data = _indices_data(patient_key, unit, indices)
        event_id = derived_id(INDICES_EVENT, patient_key, as_of, fp if fp is not None else fingerprint(unit, indices))
        return wrap_trusted_record(INDICES_EVENT, data, key=patient_key, source=SOURCE, event_id=event_id)

    def _indices_record(self, patient_key: str, unit: str | None, indices: PatientIndices, fp: int,
                        stamp: bytes) -> OutgoingRecord:
        """`indices_record` through the batch's writer (the same record; its time is the batch's)."""
        as_of, data = _indices_data(patient_key, unit, indices)
        # (derived_id(INDICES_EVENT, patient_key, as_of, fp) without its generator: the same text, the same id)
        event_id = uuid5_text(f"{INDICES_EVENT}\x1f{patient_key}\x1f{as_of}\x1f{fp}")
        return self._writer.record(patient_key, data, event_id, stamp)

    def set_unit_families(self, families: dict[str, str]) -> bool:
        """Take the unit register's filial relations; True when they changed (every open partition
        must then be refreshed: a patient's indices depend on which visits count at the listing unit)."""
        if families == self.unit_families:
            return False
        self.unit_families = dict(families)
        return True

    # ------------------------------------------------------------------ time passes

    def refresh_partition(self, partition: int) -> BatchOutcome:
        """Advance every patient of a partition to ``as_of`` (prune, recompute, emit changes)."""
        started = time.perf_counter()
        out = BatchOutcome()
        lo, _ = window_bounds(self.as_of, self.settings.window_months)
        hot = self._hot
        stamp = self._writer.stamp(datetime.now(timezone.utc))
        sizes = self.sizes[partition]
        for key, raw in self.store.items(partition):
            if hot is not None:  # pruned and recomputed on the stored bytes (hot_visits.py)
                result = hot.refresh(raw, self.as_of, self.unit_families, fingerprint)
                if result is not None:
                    self._finish_hot(partition, key, result, out, stamp)
                    sizes.setdefault(key, len(raw))
                    continue
            before = decode_record(raw)
            state = advance(before.state, self.as_of, self.settings)
            record = before if state is before.state else replace(before, state=state)
            record = prune_residences(record, lo)
            self._finish(partition, key, False, before, record, out)
            self.sizes[partition].setdefault(key, len(raw))
        out.seconds = time.perf_counter() - started
        return out

    # ------------------------------------------------------------------ reads

    def patient(self, patient_key: str) -> tuple[PatientRecord, PatientIndices] | None:
        key = patient_key.encode()
        for partition in self.store.partitions:
            raw = self.store.get(partition, key)
            if raw is not None:
                record = decode_record(raw)
                return record, compute_indices(record.state, self.as_of, self.settings, self.unit_families)
        return None

    def all_summaries(self) -> Iterable[Summary]:
        for summaries in list(self.summaries.values()):
            yield from summaries.values()

    def patient_rows(self) -> list[PatientRow]:
        """Every eligible patient's values (the snapshot's per-patient rows)."""
        return patient_rows(item for summaries in list(self.summaries.values()) for item in summaries.items())

    def aggregates(self) -> list[AggregateRow]:
        return aggregate(self.all_summaries(), self.region_id)

    def unit_aggregates(self, unit_id: str) -> list[AggregateRow]:
        return [row for row in aggregate((s for s in self.all_summaries() if s.unit == unit_id), self.region_id)
                if row.level != "region"]

    def table_size(self) -> tuple[int, int]:
        patients = sum(len(s) for s in self.sizes.values())
        total = sum(sum(s.values()) for s in self.sizes.values())
        return patients, total


def _indices_data(patient_key: str, unit: str | None, indices: PatientIndices) -> tuple[str, dict]:
    """(as of, the data) of a ``continuity.indices_changed`` event."""
    as_of = indices.as_of.isoformat()
    return as_of, {"patient_key": patient_key, "as_of": as_of, "care_unit_id": unit,
                   "doctor": dict(zip(_INDEX_FIELDS, indices.doctor)), "total": dict(zip(_INDEX_FIELDS, indices.total))}


_INDEX_FIELDS = IndexSet._fields  # (a dict of them: what `_asdict` gives, at a third of its cost)
