"""Every `continuity.indices_changed.v1` event the stream processor produces satisfies its contract.

The hot path does not schema-check its own output event by event; this test checks every event
it produces for generated histories (duplicates, cancellations, listings, FLKs, SÄBO, RUB bands,
visits outside the window), with the `jsonschema` reference validator and by reading it back as a
consumer would. Event ids are a function of the content: a replay gives the same ids.
"""
from __future__ import annotations


from hypothesis import given, settings
from hypothesis import strategies as st

from flk.events.contracts import contracts
from flk.events.envelope import read_record
from flk.events.registry import registry
from services.continuity.adapters.store import MemoryStore
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.service_layer.processor import INDICES_EVENT, Processor
from tests.integration.continuity.continuity_stream import (
    AS_OF,
    DOCTOR_2,
    cancellation,
    flk_assigned,
    listing,
    risk,
    sabo,
    visit,
)
from tests.support.builders import DOCTOR_1, UNIT_A, UNIT_B, a_patient_key
from tests.support.kafka import ConsumedRecord

INDICES_TOPIC = registry().topic_for(INDICES_EVENT).name
PATIENTS = [a_patient_key(i) for i in range(1, 4)]
DAYS = ["2024-01-10T08:00:00Z", "2024-09-20T12:00:00Z", "2025-06-01T09:30:00+02:00", "2026-03-01T09:30:00Z",
        "2026-03-15T23:00:00Z", "2026-03-16T10:00:00Z"]  # before/inside/after the 18-month window


def an_event(patient: str):
    visit_ids = st.sampled_from(["v1", "v2", "v3", "v4"]).map(lambda v: f"{v}-{patient[-6:]}")
    return st.one_of(
        st.builds(visit, st.just(patient), visit_ids, st.sampled_from([DOCTOR_1, DOCTOR_2, "SE2321000016-L003"]),
                  st.sampled_from(DAYS), st.sampled_from([UNIT_A, UNIT_B]),
                  st.sampled_from(["läkare", "läkare", "sjuksköterska", "fysioterapeut"])),
        st.builds(cancellation, st.just(patient), visit_ids),
        st.builds(listing, st.just(patient), st.sampled_from([UNIT_A, UNIT_B])),
        st.builds(flk_assigned, st.just(patient), st.sampled_from([DOCTOR_1, DOCTOR_2]), st.just(UNIT_A)),
        st.builds(sabo, st.just(patient)),
        st.builds(risk, st.just(patient), st.integers(0, 5), st.sampled_from(DAYS)),
    )


histories = st.lists(st.sampled_from(PATIENTS).flatmap(an_event), min_size=1, max_size=25)


def run(records, batch_sizes: list[int], scope: str = "listing-unit"):
    """Feed the records to a fresh processor in batches; return every outgoing record."""
    store = MemoryStore()
    processor = Processor(ContinuitySettings(scope=scope), store, AS_OF)
    processor.open_partition(0)
    inputs = [ConsumedRecord(r.topic, 0, i, r.key, r.value, tuple(r.headers)) for i, r in enumerate(records)]
    outgoing, start = [], 0
    for size in [*batch_sizes, len(inputs)]:
        batch = inputs[start:start + size]
        start += len(batch)
        if not batch:
            continue
        out = processor.process(batch)
        assert not out.dead, [d.reason for d in out.dead]
        store.commit(0, out.writes.get(0, {}), out.offsets.get(0, {}))
        outgoing += out.outgoing
    return outgoing


@settings(max_examples=150, deadline=None)
@given(history=histories, batch_sizes=st.lists(st.integers(1, 10), max_size=3),
       scope=st.sampled_from(["listing-unit", "all"]))
def test_every_indices_changed_event_satisfies_its_contract_and_reads_back(history, batch_sizes, scope):
    reference = contracts().reference_validator(INDICES_EVENT)
    outgoing = run(history, batch_sizes, scope)
    assert outgoing, "a first event for a patient always publishes its indices"
    for record in outgoing:
        assert record.topic == INDICES_TOPIC
        envelope = read_record(record.topic, record.key, record.value, record.headers)
        errors = [e.message for e in reference.iter_errors(envelope.data)]
        assert not errors, errors
        assert envelope.id == record.event_id and envelope.key == envelope.data["patient_key"]
        assert envelope.event_type == INDICES_EVENT and envelope.source == "flk/continuity"


@settings(max_examples=60, deadline=None)
@given(history=histories, batch_sizes=st.lists(st.integers(1, 10), max_size=3))
def test_indices_event_ids_are_a_function_of_the_content(history, batch_sizes):
    first = run(history, batch_sizes)
    replay = run(history, [len(history)])
    content = {}
    for record in first + replay:
        data = read_record(record.topic, record.key, record.value, record.headers).data
        assert content.setdefault(record.event_id, data) == data, "one id, one content"
    last = {}
    for record in first:
        last[record.key] = record.event_id
    assert {r.key: r.event_id for r in replay} == last, "a replay ends on the same ids"
