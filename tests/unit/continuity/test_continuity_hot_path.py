"""The worker's hot path for visits (service_layer/hot_visits.py) gives exactly what the reference gives.

The reference is the pure domain (``record_visit``, ``compute_indices``, the index module) with the
record codec. Two processors, one with the hot path and one without, are fed the same generated
histories in the same batches (visits mostly — the hot path takes a patient's batch only when it holds
nothing but visits — with duplicates, visits outside the window and later than *as of*, uncounted
professions and contact types, cancellations, listings, FLKs, SÄBO, RUB bands, filials); every byte
written to the table, every outgoing event (all but its time header), every dead letter and every
patient's aggregate inputs must be equal.
"""
from __future__ import annotations

import contextlib
import struct
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flk.events.envelope import make_record
from services.continuity.adapters.store import MemoryStore
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.domain.patient import visit_stamp
from services.continuity.service_layer.handlers import parse_time
from flk.native import twin
from services.continuity.service_layer import hot_visits as pure_hot_visits
from services.continuity.service_layer.processor import Processor
from services.continuity.service_layer.record import PatientRecord, decode_record, encode_record
from tests.integration.continuity.continuity_stream import (
    AS_OF, DOCTOR_2, cancellation, flk_assigned, listing, risk, sabo,
)
from tests.support.builders import DOCTOR_1, UNIT_A, UNIT_B, a_patient_key, a_visit
from tests.support.kafka import ConsumedRecord
from tests.support.required_tools import missing_tool

PATIENTS = [a_patient_key(i) for i in range(1, 4)]
UNIT_C = "SE2321000016-VCC3"
DAYS = ["2024-01-10T08:00:00Z", "2024-09-20T12:00:00Z", "2025-06-01T09:30:00+02:00", "2026-03-01T09:30:00Z",
        "2026-03-01T09:30:00Z", "2026-03-15T23:00:00Z", "2026-03-16T10:00:00Z", "2025-10-26T02:30:00+01:00",
        # on and around the window's first day (18 and 12 months), in UTC and local time
        "2024-09-15T10:00:00Z", "2024-09-15T22:30:00Z", "2024-09-16T00:10:00+02:00", "2025-03-15T12:00:00Z",
        "2025-03-15T23:30:00Z", "2025-03-16T08:00:00Z", "2025-09-01T08:00:00Z",
        "2026-03-16T00:00:00+01:00", "2026-03-15T23:59:59+01:00"]  # the first and last second after/of as of


def a_visit_record(patient, visit_id, practitioner, when, unit, profession, contact_type):
    return make_record("visit.recorded.v1", a_visit(
        patient_key=patient, visit_id=visit_id, practitioner_id=practitioner, occurred_at=when, care_unit_id=unit,
        profession=profession, contact_type=contact_type), source="ehr/test")


def an_event(patient: str):
    visit_ids = st.sampled_from(["v1", "v2", "v3", "v4", "v5", "v6"]).map(lambda v: f"{v}-{patient[-6:]}")
    visits = st.builds(
        a_visit_record, st.just(patient), visit_ids,
        st.sampled_from([DOCTOR_1, DOCTOR_2, "SE2321000016-L003", "SE2321000016-L004"]), st.sampled_from(DAYS),
        st.sampled_from([UNIT_A, UNIT_B, UNIT_C]),
        st.sampled_from(["läkare", "läkare", "Läkare ", "sjuksköterska", "fysioterapeut", "kurator"]),
        st.sampled_from(["besok", "besok", "telefon", "digital", "hembesok"]))
    others = st.one_of(
        st.builds(cancellation, st.just(patient), visit_ids),
        st.builds(listing, st.just(patient), st.sampled_from([UNIT_A, UNIT_B])),
        st.builds(flk_assigned, st.just(patient), st.sampled_from([DOCTOR_1, DOCTOR_2, None]), st.just(UNIT_A),
                  coordinating=st.booleans()),
        st.builds(sabo, st.just(patient), st.sampled_from(["2024-06-01", "2026-03-10"]),
                  st.sampled_from([None, True, False]),
                  until=st.sampled_from([None, None, "2024-08-01", "2025-10-01"])),  # ended before/in the window
        st.builds(risk, st.just(patient), st.integers(0, 5), st.sampled_from(DAYS)),
    )
    return st.one_of(visits, visits, visits, others)


histories = st.lists(st.sampled_from(PATIENTS).flatmap(an_event), min_size=1, max_size=40)


@pytest.fixture(scope="module", params=["pure", "compiled"], autouse=True)
def implementation(request):
    """Every test here runs on the pure module and on its compiled twin (flk.native; ``./run setup`` builds
    it): both must give exactly what the reference gives."""
    global HOT
    if request.param == "compiled":
        chosen = twin(pure_hot_visits)
        if not chosen.compiled:
            missing_tool(f"the hot path's compiled twin: {chosen.why}")
        HOT = chosen.module
    else:
        HOT = pure_hot_visits
    yield request.param
    HOT = pure_hot_visits


HOT = pure_hot_visits  # (the implementation under test: set by the fixture above)


def feed(processor: Processor, store: MemoryStore, records, batch_sizes, earlier=None, refresh=False):
    inputs = [ConsumedRecord(r.topic, 0, i, r.key, r.value, tuple(r.headers)) for i, r in enumerate(records)]
    results, start = [], 0
    as_of = processor.as_of
    for n, size in enumerate([*batch_sizes, len(inputs)]):
        # the first batch as of an earlier day: later ones find visits that have left the window since
        processor.as_of = earlier if earlier is not None and n == 0 else as_of
        batch = inputs[start:start + size]
        start += len(batch)
        if not batch:
            continue
        outcomes = [processor.process(batch)]
        if refresh and (n == 0 or start == len(inputs)):
            # time passes (the first batch was as of an earlier day) or not (the last): every stored patient
            # brought to as of, pruned or not (the hot path takes those with nothing to prune)
            store.commit(0, outcomes[0].writes.get(0, {}), outcomes[0].offsets.get(0, {}))
            processor.as_of = as_of
            outcomes.append(processor.refresh_partition(0))
        for out in outcomes:
            store.commit(0, out.writes.get(0, {}), out.offsets.get(0, {}))
            results.append((
                out.writes,
                out.offsets,
                [(r.topic, r.key, r.value, r.event_id, [h for h in r.headers if h[0] != "ce_time"])
                 for r in out.outgoing],
                [(d.reason, d.category, d.message.offset) for d in out.dead],
                dict(processor.summaries[0]),
                dict(processor.sizes[0]),
            ))
    return results


def both(records, batch_sizes, scope="listing-unit", families=None, window_months=18, stored=None, earlier=None,
         refresh=False):
    outcomes = []
    for hot in (True, False):
        store = MemoryStore()
        processor = Processor(ContinuitySettings(scope=scope, window_months=window_months), store, AS_OF,
                              hot_path=hot, compiled=HOT is not pure_hot_visits)
        assert not hot or processor._hot.__class__ is HOT.HotVisits
        if families:
            processor.set_unit_families(families)
        if stored:
            store.open(0)
            store.commit(0, stored, {})
        processor.open_partition(0)
        outcomes.append(feed(processor, store, records, batch_sizes, earlier, refresh))
    return outcomes


@settings(max_examples=150, deadline=None)
@given(history=histories, batch_sizes=st.lists(st.integers(1, 12), max_size=4),
       scope=st.sampled_from(["listing-unit", "all"]),
       families=st.sampled_from([None, {UNIT_B: UNIT_A}, {UNIT_C: UNIT_B}]),
       window_months=st.sampled_from([12, 18]), earlier=st.sampled_from([None, date(2025, 9, 1), date(2025, 12, 1)]),
       refresh=st.booleans())
def test_the_hot_path_writes_emits_and_counts_exactly_what_the_reference_does(history, batch_sizes, scope, families,
                                                                              window_months, earlier, refresh):
    hot, reference = both(history, batch_sizes, scope, families, window_months, earlier=earlier, refresh=refresh)
    assert hot == reference


_IN_THE_WINDOW = st.integers(0, 60 * 24 * 560).map(  # a minute from just before the 18-month window to after as of
    lambda m: (datetime(2024, 9, 10, tzinfo=timezone.utc) + timedelta(minutes=m)).isoformat().replace("+00:00", "Z"))


def a_visit_in_any_order(patient: str):
    """A visit at any minute (now and then at one of `DAYS`: the same second as another), by one of eight
    practitioners: the worker's usual batch on a stored record, visits going before stored ones and new ids
    first appearing before stored ones (the id table renumbered)."""
    return st.builds(
        a_visit_record, st.just(patient), st.integers(1, 30).map(lambda n: f"v{n}-{patient[-6:]}"),
        st.sampled_from([DOCTOR_1, DOCTOR_2, *(f"SE2321000016-L{i:03d}" for i in range(3, 9))]),
        st.one_of(_IN_THE_WINDOW, _IN_THE_WINDOW, st.sampled_from(DAYS)), st.sampled_from([UNIT_A, UNIT_B, UNIT_C]),
        st.sampled_from(["läkare", "läkare", "sjuksköterska", "kurator"]), st.sampled_from(["besok", "besok", "telefon"]))


def an_opening_fact(patient: str):
    return st.one_of(
        st.builds(listing, st.just(patient), st.sampled_from([UNIT_A, UNIT_B])),
        st.builds(flk_assigned, st.just(patient), st.sampled_from([DOCTOR_1, DOCTOR_2, "SE2321000016-L005"]),
                  st.just(UNIT_A), coordinating=st.booleans()),
        st.builds(cancellation, st.just(patient), st.integers(1, 30).map(lambda n: f"v{n}-{patient[-6:]}")))


@settings(max_examples=150, deadline=None)
@given(opening=st.lists(st.sampled_from(PATIENTS).flatmap(an_opening_fact), max_size=6),
       visits=st.lists(st.sampled_from(PATIENTS).flatmap(a_visit_in_any_order), min_size=1, max_size=40),
       batch_sizes=st.lists(st.integers(1, 12), max_size=4), scope=st.sampled_from(["listing-unit", "all"]),
       families=st.sampled_from([None, {UNIT_B: UNIT_A}]), earlier=st.sampled_from([None, date(2025, 12, 1)]))
def test_visits_alone_in_any_order_on_stored_records_are_written_exactly_as_the_reference_writes_them(
        opening, visits, batch_sizes, scope, families, earlier):
    """Batches of visits alone (after a batch of listings, FLKs and cancellations): the hot path's in-place way
    (new visits spliced among the stored ones' bytes) gives the reference's bytes, events and counts."""
    hot, reference = both(opening + visits, [len(opening), *batch_sizes], scope, families, earlier=earlier)
    assert hot == reference


def test_a_visit_on_the_windows_first_day_is_pruned_when_a_later_visit_arrives_as_the_reference_prunes_it():
    patient = PATIENTS[0]
    history = [listing(patient),
               a_visit_record(patient, "v1", DOCTOR_1, "2024-09-15T10:00:00Z", UNIT_A, "läkare", "besok"),
               a_visit_record(patient, "v2", DOCTOR_2, "2026-03-01T10:00:00Z", UNIT_A, "läkare", "besok")]
    hot, reference = both(history, [2], earlier=date(2025, 9, 1))  # v1 was in the window then, is not now
    assert hot == reference
    assert len(hot) == 2 and hot[1][0], "the second batch (v2 alone) writes the record"


def test_a_record_of_an_older_version_goes_the_reference_way_and_is_rewritten_as_the_current_one():
    patient = PATIENTS[0]
    old = bytearray(encode_record(PatientRecord(rub=4, rub_assessed_at=5)))
    old[0] = 2  # version 2: the same header, residences without their qualifier (none here)
    history = [a_visit_record(patient, "v1", DOCTOR_1, "2026-03-01T09:30:00Z", UNIT_A, "läkare", "besok")]
    hot, reference = both(history, [], stored={patient.encode(): bytes(old)})
    assert hot == reference
    writes = hot[0][0][0]
    assert writes[patient.encode()][0] == 3


def test_the_hot_path_takes_the_usual_visit_batch():
    """It must not quietly hand everything to the reference: a visit to a known patient is applied hot."""
    patient = PATIENTS[0]
    record = a_visit(patient_key=patient, visit_id="v9", occurred_at="2026-03-01T09:30:00Z")
    hot = HOT.HotVisits(ContinuitySettings())
    from services.continuity.service_layer.processor import fingerprint
    result = hot.apply(encode_record(PatientRecord()), [(record, 7)], AS_OF, {}, fingerprint)
    assert result is not None and result.value is not None and result.emit
    assert result.indices.total.visits == 1


def test_the_hot_path_takes_a_patients_listing_start_flk_and_risk_assessment():
    """The listing service's facts for a patient (and the ACG run's band) are applied on the bytes too: in a
    region's opening they arrive for every patient whose visit history is already stored."""
    import orjson

    from services.continuity.service_layer.processor import fingerprint
    patient = PATIENTS[0]
    facts = [(t, orjson.loads(r.value)) for t, r in [
        ("listing.started.v1", listing(patient)),
        ("fast_lakarkontakt.assigned.v1", flk_assigned(patient, DOCTOR_2, coordinating=False)),
        ("fast_lakarkontakt.assigned.v1", flk_assigned(patient, DOCTOR_1, coordinating=True)),
        ("risk.assessed.v1", risk(patient, 4))]]
    record = a_visit(patient_key=patient, visit_id="v9", occurred_at="2026-03-01T09:30:00Z", care_unit_id=UNIT_A)
    hot = HOT.HotVisits(ContinuitySettings())
    result = hot.apply(encode_record(PatientRecord()), [(record, 7)], AS_OF, {}, fingerprint, facts)
    assert result is not None and result.value is not None
    assert (result.unit, result.doctor_key, result.rub45) == (UNIT_A, DOCTOR_1, True)
    written = decode_record(result.value)
    assert written.state.fast_lakarkontakt == tuple(sorted((DOCTOR_1, DOCTOR_2))) and written.coordinating == DOCTOR_1


def test_in_one_batch_a_pruning_visit_its_duplicate_and_earlier_visits_are_placed_and_deduplicated_as_the_reference():
    """The hot path keeps a set of the known visit ids per batch (rebuilt after a prune): a visit that repeats one
    added earlier in the same batch, or one stored before, is ignored; later visits go before earlier ones in time."""
    patient = PATIENTS[0]
    v = lambda vid, when, doctor=DOCTOR_1: a_visit_record(patient, vid, doctor, when, UNIT_A, "läkare", "besok")  # noqa: E731
    history = [listing(patient), v("v1", "2024-09-15T10:00:00Z"), v("v2", "2025-06-01T09:30:00+02:00", DOCTOR_2),
               # second batch, as of today: v3 prunes v1; then v3 again, v2 again, v1 again, and two earlier visits
               v("v3", "2026-03-01T09:30:00Z"), v("v3", "2026-03-01T09:30:00Z"), v("v2", "2025-06-01T09:30:00+02:00"),
               v("v1", "2024-09-15T10:00:00Z"), v("v4", "2025-10-26T02:30:00+01:00", DOCTOR_2),
               v("v5", "2025-09-01T08:00:00Z"),
               # third batch, nothing to prune: v6 and v6 again
               v("v6", "2025-12-01T08:00:00Z"), v("v6", "2025-12-01T08:00:00Z")]
    hot, reference = both(history, [3, 6], earlier=date(2025, 9, 1))
    assert hot == reference
    written = decode_record(hot[1][0][0][patient.encode()])
    assert [s.practitioner_id for s in written.state.visits] == [DOCTOR_2, DOCTOR_1, DOCTOR_2, DOCTOR_1]
    assert len(decode_record(hot[2][0][0][patient.encode()]).state.visits) == 5


_INSTANTS = st.datetimes(min_value=datetime(1890, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(timezone.utc))
# the hours around Europe/Stockholm's offset changes and the 1900 change from local mean time (mid-hour)
_EDGES = st.sampled_from([datetime(2026, 3, 29, 0, 59, 59), datetime(2026, 3, 29, 1, 0, 0), datetime(2026, 10, 25, 0, 30),
                          datetime(2026, 10, 25, 1, 0, 1), datetime(1899, 12, 31, 22, 47, 47),
                          datetime(1899, 12, 31, 22, 47, 48), datetime(1899, 12, 31, 22, 59, 59)]
                         ).map(lambda t: t.replace(tzinfo=timezone.utc))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_INSTANTS, _EDGES), min_size=1, max_size=30),
       st.sampled_from(["seconds", "milliseconds", "microseconds", "+00:00", "+02:00"]))
def test_a_visits_stamp_is_the_references_for_any_time_and_zone_change(instants, form):
    hot = HOT.HotVisits(ContinuitySettings())
    for instant in instants:
        if form.startswith("+"):
            text = instant.astimezone(timezone(timedelta(hours=int(form[1:3])))).isoformat()
        else:
            text = instant.isoformat(timespec=form).replace("+00:00", "Z")
        assert hot._stamp(text) == visit_stamp(parse_time(text)), text


@pytest.mark.parametrize("text", ["2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "2026-03-10T24:00:00Z",
                                  "2026-03-10T10:60:00Z", "2026-03-10T10:00:60Z", "2026-03-10T10:00:00.1234567Z",
                                  "2026-03-10 10:00:00Z", "20260310T100000Z", "2026-03-10T10:00:0٣Z",
                                  "2026-03-10T10:0 :00Z", "2026-03-10T10:00:+5Z", "2026-03-10T10:1_0:00Z"])
@pytest.mark.parametrize("hour_kept", [False, True], ids=["hour-new", "hour-kept"])
def test_a_time_the_reference_refuses_is_refused_by_the_stamp_too(text, hour_kept):
    hot = HOT.HotVisits(ContinuitySettings())
    if hour_kept:  # its hour read before (if it is one): the stamp's fast path (slices) decides
        with contextlib.suppress(ValueError):
            hot._stamp(text[:13] + ":00:00Z")
    try:
        expected = visit_stamp(parse_time(text))
    except ValueError:
        with pytest.raises(ValueError):
            hot._stamp(text)
    else:
        assert hot._stamp(text) == expected


_ID_NUMBER = st.one_of(st.integers(0, 20), st.sampled_from([255, 256, 271, 272, 4095]), st.integers(0, 0xFFF))


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=1, max_value=40),
       st.lists(st.tuples(_ID_NUMBER, _ID_NUMBER, st.integers(0, (1 << 40) - 1)), min_size=1, max_size=12))
@example(16, [(16, 0, 0)]).via("a practitioner number with byte 2 set")
@example(3, [(0, 0x100, 5), (1, 2, 0)]).via("a unit number with byte 1's low nibble set")
@example(16, [(15, 15, (1 << 40) - 1)]).via("the largest numbers of a 16-id table")
def test_stored_id_numbers_are_checked_against_the_table_as_one_number_at_a_time_checks_them(ns, visits):
    packs = tuple(rest << 24 | p << 12 | u for p, u, rest in visits)
    raw = b"head" + struct.pack(f"<{3 * len(packs)}Q", *(x for packed in packs for x in (7, 9, packed))) + b"tail"
    expected = all(packed >> 12 & 0xFFF < ns and packed & 0xFFF < ns for packed in packs)
    assert HOT._ids_in_table(raw, 4, len(packs), ns, packs) is expected


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=1, max_value=30).flatmap(lambda size: st.tuples(
    st.just(size), st.lists(st.integers(0, size - 1), max_size=40),
    st.lists(st.integers(0, size - 1), max_size=3).map(tuple), st.integers(0, 6))))
@example((1, [], (), 0)).via("no visits, eligible at 0")
@example((3, [2], (2, 2), 1)).via("one visit, with a duplicated FLK number")
def test_the_indices_over_id_numbers_are_the_index_modules_to_the_last_bit(case):
    from services.continuity.domain.indices import index_set

    size, ids, flk, min_visits = case
    ours = HOT._index_set_of_numbers(ids, flk, min_visits, size)
    reference = index_set(ids, flk, min_visits)
    assert tuple(ours) == tuple(reference)
    assert [type(v) for v in ours] == [type(v) for v in reference]


@pytest.mark.parametrize("until", ["2024-08-01", "2025-10-01"])
def test_a_refresh_prunes_a_sabo_period_that_left_the_window_as_the_reference_does(until):
    patient = PATIENTS[0]
    history = [listing(patient), sabo(patient, "2024-06-01", True, until=until),
               a_visit_record(patient, "v1", DOCTOR_1, "2026-03-01T10:00:00Z", UNIT_A, "läkare", "besok")]
    hot, reference = both(history, [3], earlier=date(2025, 9, 1), refresh=True)
    assert hot == reference
    refreshed = hot[1][0][0][PATIENTS[0].encode()]
    assert len(decode_record(refreshed).residences) == (0 if until < "2024-09-15" else 1)


def test_a_refresh_that_prunes_visits_a_tombstone_and_a_sabo_period_is_taken_hot_with_the_references_bytes():
    """Three months on, most patients have a visit that left the window: the refresh prunes it on the bytes
    (not the reference way, which decodes every such patient) and writes what the reference writes."""
    patient = PATIENTS[0]
    history = [listing(patient), sabo(patient, "2024-06-01", True, until="2024-08-01"),
               a_visit_record(patient, "v1", DOCTOR_1, "2024-09-15T10:00:00Z", UNIT_A, "läkare", "besok"),
               a_visit_record(patient, "v2", DOCTOR_2, "2024-09-10T10:00:00Z", UNIT_A, "läkare", "besok"),
               cancellation(patient, "v2"),
               a_visit_record(patient, "v3", DOCTOR_1, "2026-03-01T10:00:00Z", UNIT_A, "läkare", "besok")]
    earlier = date(2025, 9, 1)
    store = MemoryStore()
    processor = Processor(ContinuitySettings(), store, earlier, compiled=HOT is not pure_hot_visits)
    processor.open_partition(0)
    inputs = [ConsumedRecord(r.topic, 0, i, r.key, r.value, tuple(r.headers)) for i, r in enumerate(history)]
    out = processor.process(inputs)
    assert not out.dead
    store.commit(0, out.writes.get(0, {}), out.offsets.get(0, {}))
    stored = decode_record(store.get(0, patient.encode()))
    assert len(stored.state.visits) == 2 and stored.state.tombstones and stored.residences
    processor.as_of = AS_OF  # v1, v2's tombstone and the SÄBO period are before the window's start now
    reference = Processor(ContinuitySettings(), _copy(store), AS_OF, hot_path=False)
    expected = reference.open_partition(0)  # (opening a partition refreshes it)
    calls = []
    processor._finish = lambda *a: calls.append(a)  # the reference way's last step: must not be taken
    refreshed = processor.refresh_partition(0)
    assert not calls, "the pruning refresh went the reference way"
    assert refreshed.writes == expected.writes
    assert [(r.key, r.value) for r in refreshed.outgoing] == [(r.key, r.value) for r in expected.outgoing]
    assert processor.summaries[0] == reference.summaries[0]
    pruned = decode_record(refreshed.writes[0][patient.encode()])
    assert [v[3] for v in pruned.state.visits] == [DOCTOR_1] and not pruned.state.tombstones and not pruned.residences


def _copy(store: MemoryStore) -> MemoryStore:
    copy = MemoryStore()
    for p in store.partitions:
        copy.open(p)
        copy.commit(p, dict(store.items(p)), store.offsets(p))
    return copy
