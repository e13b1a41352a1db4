"""The usual read (flk/events/usual.py) is a filter in front of the envelope's full read: whatever message it
takes, the full read takes with the same id, type, source, time, key and data; whatever it is not sure of, it
leaves to the full read (None). It takes the usual message of every typed event type, and both the pure module
and its compiled twin (flk.native) behave so, with the format checks pure and compiled."""
from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flk.events import envelope as env
from flk.events import formats as pure_formats
from flk.events import typed
from flk.events import usual as pure_usual
from flk.events.contracts import ContractViolation
from flk.events.envelope import EnvelopeError, make_record
from flk.events.typed import TYPED_EVENTS
from flk.native import twin
from tests.support.builders import a_visit
from tests.support.required_tools import missing_tool
from tests.unit.platform.test_envelope_fast_path import BASE, header_names, header_values, values
from tests.unit.platform.test_typed_decoding import _LISTING_FACTS, _TIMES, _events, _garbled, near_times, single_edits


@pytest.fixture(scope="module", params=["pure", "compiled"], autouse=True)
def implementation(request, monkeypatch_module):
    """The usual read and the typed decoders' format checks, pure or compiled (``./run setup`` builds the
    twins; a missing one skips here and fails under CI=true)."""
    global READ
    if request.param == "compiled":
        chosen = [twin(pure_usual), twin(pure_formats)]
        for c in chosen:
            if not c.compiled:
                missing_tool(f"a compiled twin of the envelope's read: {c.why}")
        READ = chosen[0].module.read_usual
        monkeypatch_module.setattr(typed, "_f", chosen[1].module)
    else:
        READ = pure_usual.read_usual
        monkeypatch_module.setattr(typed, "_f", pure_formats)
    monkeypatch_module.setattr(typed, "_formats_chosen", True)
    yield request.param
    READ = pure_usual.read_usual


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as m:
        yield m


READ = pure_usual.read_usual  # (the implementation under test: set by the fixture above)


def full_read(topic, key, value, headers):
    """The full read (`fast=False`: the SDK, then the JSON Schema), as the usual read gives its result."""
    try:
        envelope = env._read(topic, key, value, headers, fast=False)
    except (EnvelopeError, ContractViolation) as exc:
        return "refused", str(exc)
    return envelope


def assert_taken_as_the_full_read_takes_it(topic, key, value, headers):
    taken = READ(topic, key, value, headers)
    if taken is None:
        return False
    event_id, event_type, source, raw_time, key_text, data = taken
    reference = full_read(topic, key, value, headers)
    assert isinstance(reference, env.Envelope), f"the usual read took what the full read refuses: {reference}"
    assert (event_id, event_type, source, key_text) == (reference.id, reference.event_type, reference.source,
                                                        reference.key)
    assert repr(env._time_of(raw_time)) == repr(reference.time)  # (repr: the same tz objects, not just equal)
    assert data == reference.data and type(data) is dict  # (in the schema's field order, as typed decoding gives)
    return True


@settings(max_examples=1500, deadline=None)
@given(changes=st.lists(st.tuples(header_names, header_values), max_size=3),
       drop=st.sets(st.sampled_from([n for n, _ in BASE.headers]), max_size=2),
       value=values, key=st.sampled_from([BASE.key, b"other", b"\xff", b""]),
       topic=st.sampled_from([BASE.topic, "listing.events.v1", "no.such.topic"]))
def test_a_garbled_envelope_is_taken_only_as_the_full_read_takes_it(changes, drop, value, key, topic):
    headers = [(n, v) for n, v in BASE.headers if n not in drop] + changes
    assert_taken_as_the_full_read_takes_it(topic, key, value, headers)


@pytest.mark.parametrize("event_type", sorted(TYPED_EVENTS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_garbled_data_of_a_typed_type_is_taken_only_as_the_full_read_takes_it(event_type, data):
    instance = data.draw(_events(event_type))
    record = make_record(event_type, instance, source="test")
    value = _garbled(data.draw, event_type, instance)
    assert_taken_as_the_full_read_takes_it(record.topic, record.key, value, record.headers)


@pytest.mark.parametrize("event_type", sorted(_LISTING_FACTS) + ["visit.recorded.v1"])
def test_the_usual_message_of_a_typed_type_is_taken(event_type):
    """The properties above hold for a read that takes nothing; this proves it takes the usual message."""
    for data in _LISTING_FACTS.get(event_type, [a_visit()]):
        record = make_record(event_type, data, source="flk/listing")
        assert assert_taken_as_the_full_read_takes_it(record.topic, record.key, record.value, record.headers)


def test_a_type_without_a_typed_decoder_is_left_to_the_full_read():
    data = {"patient_key": BASE.key.decode(), "as_of": "2026-03-01", "care_unit_id": None,
            "doctor": {}, "total": {}}
    record = dataclasses.replace(BASE, topic="continuity.indices.v1", value=orjson.dumps(data),
                                 headers=[(n, b"se.flk.continuity.indices_changed.v1" if n == "ce_type" else v)
                                          for n, v in BASE.headers])
    assert READ(record.topic, record.key, record.value, record.headers) is None


def test_headers_as_a_consumer_gives_them_are_taken():
    """aiokafka's consumer records carry their headers as a tuple; a producer's records as a list."""
    assert READ(BASE.topic, BASE.key, BASE.value, tuple(BASE.headers)) is not None
    assert READ(BASE.topic, BASE.key, BASE.value, list(BASE.headers)) is not None


def test_headers_other_than_a_sequence_of_pairs_are_left_to_the_full_read():
    assert READ(BASE.topic, BASE.key, BASE.value, iter(BASE.headers)) is None
    assert READ(BASE.topic, BASE.key, BASE.value, {n: v for n, v in BASE.headers}) is None
    assert READ(BASE.topic, BASE.key, BASE.value, [*BASE.headers, ("ce_subject", b"x")]) is None
    assert READ(BASE.topic, BASE.key, BASE.value, [*BASE.headers[:-1], (b"ce_specversion", b"1.0")]) is None
    assert READ(BASE.topic, BASE.key, BASE.value, [*BASE.headers[:-1], (["unhashable"], b"1.0")]) is None
    assert READ(BASE.topic, BASE.key, BASE.value, [*BASE.headers[:-1], ("ce_specversion", None)]) is None
    assert READ(BASE.topic, BASE.key, BASE.value, [*BASE.headers, ("ce_specversion",)]) is None


@pytest.mark.parametrize("raw_time", [b"2026-02-30T10:00:00Z", b"2026-13-01T10:00:00Z", b"2026-03-01T24:00:00Z",
                                      b"2026-03-01T10:60:00Z", b"2026-03-01T10:00:60Z", b"2026-03-01T10:00:00+24:00",
                                      b"2026-03-01T10:00:00", b"2026-03-01T10:00:00Z\n"])
def test_a_time_the_standard_library_does_not_read_is_left_to_the_full_read(raw_time):
    """The full read refuses them all but 24:00, which the SDK's parser reads as the next midnight."""
    headers = [(n, raw_time if n == "ce_time" else v) for n, v in BASE.headers]
    assert READ(BASE.topic, BASE.key, BASE.value, headers) is None
    refused = not isinstance(full_read(BASE.topic, BASE.key, BASE.value, headers), env.Envelope)
    assert refused == (b"T24:" not in raw_time)


def test_a_key_that_is_not_the_datas_is_left_to_the_full_read_which_refuses_it():
    other = b"pk1_" + b"a" * 26
    assert READ(BASE.topic, other, BASE.value, BASE.headers) is None
    assert full_read(BASE.topic, other, BASE.value, BASE.headers) == ("refused", "message key does not match "
                                                                              "data.patient_key")


@settings(max_examples=1000, deadline=None)
@given(text=near_times())
def test_the_time_header_is_read_by_its_shape_exactly_as_its_pattern_reads_it(implementation, text):
    """The ce_time header's check reads the pattern byte by byte (flk/events/usual.py): it takes exactly what
    the pattern takes, pure and compiled."""
    module = twin(pure_usual).module if implementation == "compiled" else pure_usual
    raw = text.encode()
    assert module.usual_time_shape_ok(raw) == (pure_usual.USUAL_TIME.fullmatch(raw) is not None)


def test_every_single_edit_of_a_time_header_is_read_by_its_shape_exactly_as_its_pattern_reads_it(implementation):
    module = twin(pure_usual).module if implementation == "compiled" else pure_usual
    for text in _TIMES:
        for edited in single_edits(text):
            raw = edited.encode()
            assert module.usual_time_shape_ok(raw) == (pure_usual.USUAL_TIME.fullmatch(raw) is not None), raw
