"""The envelope's fast path (ce_* headers and orjson, no SDK objects) decides every message
exactly as the CloudEvents SDK does: the same headers and the same JSON value on write, the same
decoded event or the same refusal reason on read. The SDK path (`fast=False`) is the reference."""
from __future__ import annotations

import dataclasses
import json
import math
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flk.events import envelope as env
from flk.events.contracts import ContractViolation
from flk.events.envelope import FLK_NAMESPACE, EnvelopeError, derived_id, make_record
from tests.support.builders import a_patient_key, a_visit

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                | st.floats() | st.text(max_size=12))
json_like = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.tuples(children)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
offsets = st.sampled_from([None, timezone.utc, timezone(timedelta(0)), timezone(timedelta(hours=1)),
                           timezone(timedelta(hours=-5, minutes=-30)), timezone(timedelta(seconds=3601))])
times = st.builds(lambda dt, tz: dt.replace(tzinfo=tz), st.datetimes(min_value=datetime(1, 1, 2),
                                                                    max_value=datetime(9999, 12, 30)), offsets)


def sdk_outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as exc:  # noqa: BLE001 - compared as type and message
        return "raised", (type(exc), str(exc))


# ---------------------------------------------------------------------------------- writing


@settings(max_examples=400, deadline=None)
@given(data=st.dictionaries(st.text(max_size=8) | st.integers(0, 3), json_like, max_size=5),
       source=st.sampled_from(["flk/continuity", "/ehr/cosmic", "", "källa/å"]),
       event_id=st.sampled_from(["id-1", "", str(uuid.uuid4())]), time=times,
       event_type=st.sampled_from(["visit.recorded.v1", "continuity.indices_changed.v1"]))
def test_the_fast_writer_gives_the_sdks_headers_and_the_same_json_value(data, source, event_id, time, event_type):
    key = a_patient_key()
    fast = env._wrap_fast(event_type, key, data, source, event_id, time)
    kind, reference = sdk_outcome(env._wrap_sdk, event_type, key, data, source, event_id, time)
    if fast is None:
        return  # the SDK decides (and `_wrap` uses its result or its error)
    assert kind == "ok", "the fast path must not accept what the SDK refuses"
    headers, value = fast
    assert headers == reference[0]
    assert orjson.loads(value) == json.loads(reference[1]) == data
    if time.utcoffset().seconds % 60:
        return  # an offset with seconds: the SDK writes it but cannot read it back (nor can we)
    for message in (ce_kafka.KafkaMessage(dict(headers), key.encode(), value),
                    ce_kafka.KafkaMessage(dict(reference[0]), key.encode(), reference[1])):
        event = ce_kafka.from_binary(message, env._FORMAT)
        assert event.get_data() == data and event.get_attributes()["id"] == event_id


@settings(max_examples=200, deadline=None)
@given(data=json_like)
def test_data_orjson_cannot_write_exactly_goes_through_the_sdk(data):
    payload = {"x": data}
    fast = env._wrap_fast("visit.recorded.v1", "k", payload, "/s", "i", datetime.now(timezone.utc))
    if _has_non_finite_or_tuple_or_big_int(data):
        assert fast is None
    else:
        assert fast is not None and orjson.loads(fast[1]) == payload


def _has_non_finite_or_tuple_or_big_int(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**64
    if isinstance(value, tuple):
        return True
    if isinstance(value, list):
        return any(_has_non_finite_or_tuple_or_big_int(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite_or_tuple_or_big_int(v) for v in value.values())
    return False


def test_the_usual_events_take_the_fast_path_both_ways():
    visit = a_visit(profession="sjuksköterska")
    when = datetime(2026, 3, 1, 9, 30, 1, 123456, tzinfo=timezone.utc)
    assert env._wrap_fast("visit.recorded.v1", visit["patient_key"], visit, "/ehr", "id", when) is not None
    record = make_record("visit.recorded.v1", visit, source="/ehr", time=when)
    decoded = env._decode_fast({n.lower(): v for n, v in record.headers}, record.key, record.value)
    assert decoded == (record.event_id, "/ehr", when, visit)


def test_a_naive_time_is_refused_as_the_sdk_refuses_it():
    try:
        make_record("visit.recorded.v1", a_visit(), source="/s", time=datetime(2026, 1, 1))
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "CloudEventValidationError"
    else:
        raise AssertionError("a naive time was accepted")


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=80))
def test_derived_ids_are_the_uuid5_of_the_standard_library(name):
    assert env.uuid5_text(name) == str(uuid.uuid5(FLK_NAMESPACE, name))


def test_derived_ids_join_their_parts_as_before():
    assert derived_id("a", 1, None) == str(uuid.uuid5(FLK_NAMESPACE, "a\x1f1\x1fNone"))


# ---------------------------------------------------------------------------------- reading

VISIT = a_visit()
BASE = make_record("visit.recorded.v1", VISIT, source="/ehr/cosmic",
                   time=datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc))
digits = st.text(alphabet="0123456789", min_size=1, max_size=3)
time_texts = st.one_of(
    st.builds(lambda y, mo, d, h, mi, s, frac, tz: f"{y}-{mo}-{d}T{h}:{mi}:{s}{frac}{tz}",
              st.sampled_from(["2026", "0001", "9999", "20266"]), st.sampled_from(["01", "02", "12", "13", "1"]),
              st.sampled_from(["01", "28", "29", "30", "31", "00"]), st.sampled_from(["00", "09", "23", "24"]),
              st.sampled_from(["00", "59", "60"]), st.sampled_from(["00", "59", "60", "61"]),
              st.sampled_from(["", ".", ".1", ".123", ".123456", ".1234567", ",5"]) | st.builds(".{}".format, digits),
              st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+01:00", "-05:30", "+0100", "+01", "+24:00",
                               "+23:59", "+00:60", "-23:60", "+1:00"])),
    st.text(max_size=30),
)
header_values = (st.builds(str.encode, time_texts) | st.binary(max_size=12) | st.none()
                 | st.sampled_from([b"", b"1.0", b"application/json", b"text/plain", b"application/cloudevents+json",
                                    b"se.flk.visit.recorded.v1", b"\xff\xfe"]))
header_names = st.sampled_from(["ce_time", "CE_TIME", "ce_id", "ce_source", "content-type", "Content-Type",
                                "ce_dataschema", "ce_partitionkey", "ce_subject", "ce_foo", "ce_Foo-Bar", "ce_",
                                "ce_data", "x-trace", "ce_specversion", "ce_type"])
ODD_VALUES = [b"", b"null", b"[]", b"{}", b"\xef\xbb\xbf{}", b'{"a": NaN}', b'{"a": 1e400}',
              b'{"a": 123456789012345678901234567890}', b'{"a": "\\ud800"}', b'{"a": 1, "a": 2}',
              b"[" * 300 + b"]" * 300, b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}", b"{" * 3, b"\xff", b'"text"',
              b" {} ", b"{}x", json.dumps({**VISIT, "visit_id": "v-\ud800"}).encode(),
              json.dumps({**VISIT, "extra": float("nan")}).encode(), b" " + BASE.value + b"\n"]
values = st.one_of(
    st.just(BASE.value),
    st.builds(lambda d: json.dumps({**VISIT, **d}).encode(), st.dictionaries(st.sampled_from(sorted(VISIT)),
                                                                             json_scalars, max_size=2)),
    st.builds(lambda d: json.dumps(d, ensure_ascii=False).encode(), json_like),
    st.sampled_from(ODD_VALUES),
    st.binary(max_size=40),
)


def read_outcome(fast: bool, topic, key, value, headers):
    try:
        envelope = env._read(topic, key, value, headers, fast=fast)
    except (EnvelopeError, ContractViolation) as exc:
        return "refused", type(exc), str(exc)
    if not any(name.lower() == "ce_time" for name, _ in headers):  # the SDK stamps the time of reading
        assert abs(envelope.time - datetime.now(timezone.utc)) < timedelta(minutes=1)
        envelope = dataclasses.replace(envelope, time=None)
    return "read", envelope, repr(envelope)  # repr: the same tz objects and key order, not just equal


@settings(max_examples=1500, deadline=None)
@given(changes=st.lists(st.tuples(header_names, header_values), max_size=3),
       drop=st.sets(st.sampled_from([n for n, _ in BASE.headers]), max_size=2),
       value=values, key=st.sampled_from([BASE.key, b"other", b"\xff", b""]))
@example(changes=[("ce_time", b"2026-01-01T00:00:00+00:60")], drop=set(), value=BASE.value, key=BASE.key
         ).via("an offset of 60 minutes: the stdlib's parser takes it, the SDK's refuses it")
def test_the_fast_reader_decodes_or_refuses_exactly_as_the_sdk(changes, drop, value, key):
    headers = [(n, v) for n, v in BASE.headers if n not in drop] + changes
    reference = read_outcome(False, BASE.topic, key, value, headers)
    assert read_outcome(True, BASE.topic, key, value, headers) == reference
    assert event_outcome(BASE.topic, key, value, headers) == event_part(reference)


def event_outcome(topic, key, value, headers):
    """`read_event`'s outcome: its (type, data) or its refusal."""
    try:
        event_type, data = env.read_event(topic, key, value, headers)
    except (EnvelopeError, ContractViolation) as exc:
        return "refused", type(exc), str(exc)
    return "read", event_type, repr(data)


def event_part(outcome):
    """A reader's outcome as `read_event` gives it: the type and the data of an envelope read."""
    if outcome[0] == "refused":
        return outcome
    return "read", outcome[1].event_type, repr(outcome[1].data)


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_odd_values_under_valid_headers_are_decided_as_the_sdk_decides_them(value):
    reference = read_outcome(False, BASE.topic, BASE.key, value, BASE.headers)
    assert read_outcome(True, BASE.topic, BASE.key, value, BASE.headers) == reference
    assert event_outcome(BASE.topic, BASE.key, value, BASE.headers) == event_part(reference)


@settings(max_examples=300, deadline=None)
@given(time=times.filter(lambda t: t.tzinfo is not None and t.utcoffset().seconds % 60 == 0),
       profession=st.sampled_from(["läkare", "kurator"]), note=st.text(alphabet="abcå-_1", max_size=20))
def test_records_the_fast_writer_made_read_back_identically_on_both_paths(time, profession, note):
    visit = a_visit(profession=profession, visit_id=f"v-{note}" if note else "v-1")
    record = make_record("visit.recorded.v1", visit, source="/ehr/å", time=time)
    fast = read_outcome(True, record.topic, record.key, record.value, record.headers)
    assert fast == read_outcome(False, record.topic, record.key, record.value, record.headers)
    assert fast[0] == "read" and fast[1].data == visit and fast[1].time == time


@pytest.mark.parametrize("shape", [list, tuple, iter], ids=["list", "tuple", "iterator"])
@pytest.mark.parametrize("names", ["lower", "mixed"])
def test_headers_in_any_iterable_and_any_case_are_read_as_the_sdk_reads_them(shape, names):
    """The reader takes the usual (lower-case) header names as they are and lower-cases any other; an
    iterator of headers (read once) gives the same envelope as a list."""
    headers = [(n.upper() if names == "mixed" and n in ("ce_id", "content-type") else n, v) for n, v in BASE.headers]
    reference = read_outcome(False, BASE.topic, BASE.key, BASE.value, headers)
    assert read_outcome(True, BASE.topic, BASE.key, BASE.value, headers) == reference
    assert reference[0] == "read"
    envelope = env._read(BASE.topic, BASE.key, BASE.value, shape(headers), fast=True)
    assert repr(envelope) == reference[2]
