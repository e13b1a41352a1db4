"""The typed decoder (flk/events/typed.py) accepts only what the JSON Schema accepts, with the same data, and
so reading a message with it accepts and refuses exactly what the schema does, with the same reasons.

Events are drawn from the schema itself (hypothesis-jsonschema, as the contracts test does) and then
garbled (a field dropped, an unknown one added, a wrong type, a value made too long, a trailing newline,
an impossible time, duplicate keys, truncated bytes, not an object)."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import cache

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from flk.events import envelope, formats, typed
from flk.events.contracts import contracts
from flk.events.envelope import EnvelopeError, make_record, read_record
from flk.events.typed import TYPED_EVENTS, typed_decode
from flk.native import twin
from tests.support.builders import a_patient_key, a_visit
from tests.support.required_tools import missing_tool
from tests.unit.platform.test_contracts_and_registry import _inline_refs


@pytest.fixture(scope="module", params=["pure", "compiled"], autouse=True)
def format_checks(request):
    """Every test here runs with the format checks (flk/events/formats.py) pure and compiled (flk.native;
    ``./run setup`` builds the twin; a missing one skips here and fails under CI=true)."""
    module = formats
    if request.param == "compiled":
        chosen = twin(formats)
        if not chosen.compiled:
            missing_tool(f"the format checks' compiled twin: {chosen.why}")
        module = chosen.module
    with pytest.MonkeyPatch.context() as m:
        m.setattr(typed, "_f", module)
        m.setattr(typed, "_formats_chosen", True)
        yield request.param


@cache
def _events(event_type: str):
    c = contracts()
    return from_schema(_inline_refs(c.schema(event_type), c.shared))


_DATE_LIKE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").match


def _garbled(draw, event_type: str, data: dict) -> bytes:
    kind = draw(st.sampled_from(["as is", "as is", "drop", "extra", "type", "long", "newline", "time", "duplicate",
                                 "truncate", "not an object", "unicode", "date", "upper", "repeat"]))
    data = dict(data)
    names = sorted(data)
    name = draw(st.sampled_from(names))
    if kind == "drop":
        data.pop(name)
    elif kind == "extra":
        data[draw(st.text(min_size=1, max_size=8))] = draw(st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4))
    elif kind == "type":
        data[name] = draw(st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.booleans()
                          | st.lists(st.integers(0, 9), max_size=2))
    elif kind == "long":
        data[name] = str(data[name]) + "x" * draw(st.integers(1, 70))
    elif kind == "newline":
        data[name] = str(data[name]) + "\n"
    elif kind == "time":
        data["occurred_at"] = draw(st.sampled_from(["2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z",
                                                    "2026-03-01T25:00:00Z", "2026-03-01T10:00:00",
                                                    "2026-03-01 10:00:00Z", "2026-03-01T10:00:00z",
                                                    "2026-03-01T10:00:00.123456789+01:00",
                                                    "2026-03-01T10:00:00+24:00", "2026-03-01"]))
    elif kind == "unicode":
        data[name] = draw(st.text(min_size=1, max_size=40))
    elif kind == "date":  # a date or time of the right shape that is no date (or a date where a time goes)
        dated = [n for n in names if isinstance(data[n], str) and _DATE_LIKE(data[n])]
        if dated:
            data[draw(st.sampled_from(dated))] = draw(st.sampled_from(
                ["2026-02-30", "2026-13-01", "2025-00-10", "2026-02-29", "2026-03-01T10:00:00Z", "2026-03-01T10:00Z",
                 "2026-3-01", "20260301", "2026-02-30T10:00:00Z", "2026-03-01T10:00:00+01", "+02026-03-01"]))
    elif kind == "upper":  # ids are lower case (uuids, patient keys)
        data[name] = str(data[name]).upper()
    elif kind == "repeat":  # an array's item twice (uniqueItems)
        arrays = [n for n in names if isinstance(data[n], list) and data[n]]
        if arrays:
            chosen = draw(st.sampled_from(arrays))
            data[chosen] = [*data[chosen], data[chosen][0]]
    value = orjson.dumps(data)
    if kind == "duplicate":
        value = value[:-1] + b',"' + name.encode() + b'":' + orjson.dumps(draw(st.text(max_size=20))) + b"}"
    elif kind == "truncate":
        value = value[:draw(st.integers(0, len(value) - 1))]
    elif kind == "not an object":
        value = orjson.dumps([data])
    return value


def outcome(topic, key, value, headers):
    try:
        envelope = read_record(topic, key, value, headers)
    except Exception as exc:  # noqa: BLE001 - compared as type and reason
        return "refused", type(exc).__name__, str(exc)
    return "accepted", envelope.event_type, envelope.data, envelope.id, envelope.source, envelope.time


@pytest.mark.parametrize("event_type", sorted(TYPED_EVENTS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_what_the_typed_decoder_accepts_the_schema_accepts_with_the_same_data(event_type, data):
    instance = data.draw(_events(event_type))
    value = _garbled(data.draw, event_type, instance)
    decoded = typed_decode(event_type, value)
    if decoded is not None:
        reference = orjson.loads(value)
        assert contracts().reference_validator(event_type).is_valid(reference)
        assert decoded == reference and type(decoded) is dict


@pytest.mark.parametrize("event_type", sorted(TYPED_EVENTS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_reading_with_the_typed_decoder_accepts_and_refuses_exactly_as_the_schema_does(event_type, data):
    instance = data.draw(_events(event_type))
    record = make_record(event_type, instance, source="test")  # valid: the headers and key as a producer writes them
    value = _garbled(data.draw, event_type, instance)
    typed_outcome = outcome(record.topic, record.key, value, record.headers)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(typed, "_DECODERS", {})  # the reference way: orjson / the SDK, then the compiled JSON Schema
        reference_outcome = outcome(record.topic, record.key, value, record.headers)
    assert typed_outcome == reference_outcome


def test_the_typed_decoder_takes_the_usual_visit_and_leaves_the_odd_one_to_the_reference():
    usual = a_visit()
    assert typed_decode("visit.recorded.v1", orjson.dumps(usual)) == usual
    assert typed_decode("visit.recorded.v1", orjson.dumps({**usual, "occurred_at": "2026-03-01T10:00:00Z\n"})) is None
    assert typed_decode("residence.recorded.v1", b"{}") is None  # no Struct: the reference decides
    record = make_record("visit.recorded.v1", usual, source="test")
    with pytest.raises(EnvelopeError, match="key does not match"):
        read_record(record.topic, b"pk1_" + b"a" * 26, record.value, record.headers)


_KEY, _UNIT, _DOCTOR = a_patient_key(3), "SE2321000016-VC0001", "SE2321000016-L0001"
_LISTING_FACTS = {
    "listing.started.v1": [
        {"listing_id": "0b9d5c52-6f0e-5d2a-9a51-3c2b1d0e4f6a", "patient_key": _KEY, "care_unit_id": _UNIT,
         "started_on": "2026-03-01", "responsibility_from": "2026-03-01", "origin": "active_choice", "channel": "1177",
         "initiated_by": "person", "previous_care_unit_id": None, "command_id": "7d1f0e8a-2b3c-5d4e-8f90-a1b2c3d4e5f6"},
        {"listing_id": "0b9d5c52-6f0e-5d2a-9a51-3c2b1d0e4f6b", "patient_key": _KEY, "care_unit_id": _UNIT,
         "started_on": "2026-03-01", "responsibility_from": "2026-03-02", "origin": "no_choice_placement",
         "channel": "admin", "initiated_by": "region", "previous_care_unit_id": "SE2321000016-VC0002"}],
    "fast_lakarkontakt.assigned.v1": [
        {"assignment_id": "5e0c7d2a-1b3f-5c4d-9e8f-0a1b2c3d4e5f", "patient_key": _KEY, "care_unit_id": _UNIT,
         "list_id": "L-SE2321000016-L0001", "list_kind": "doctor", "practitioner_id": _DOCTOR, "coordinating": True,
         "assigned_on": "2026-03-01", "command_id": "7d1f0e8a-2b3c-5d4e-8f90-a1b2c3d4e5f6"},
        {"assignment_id": "5e0c7d2a-1b3f-5c4d-9e8f-0a1b2c3d4e60", "patient_key": _KEY, "care_unit_id": _UNIT,
         "list_id": "SE2321000016-VC0001-F1", "list_kind": "fictive", "practitioner_id": None,
         "coordinating": False, "assigned_on": "2026-03-01"}],
}


@pytest.mark.parametrize("event_type", sorted(TYPED_EVENTS))
def test_the_typed_decoder_takes_every_event_of_its_types_a_simulated_region_makes(event_type):
    """The property tests above prove the typed decoder never says yes when the schema says no; this one that
    it does say yes to the usual event (a Struct that refused everything would pass them, at the old cost)."""
    from tools.simulator.generate import Simulation

    made = [e.data for e in Simulation("small", seed=7, limit_people=400).stream() if e.event_type == event_type]
    if event_type in _LISTING_FACTS:  # the listing service's facts, as its event writers make them
        made = _LISTING_FACTS[event_type]
    assert made
    assert all(typed_decode(event_type, orjson.dumps(data)) == data for data in made)


_AT = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)


def made(event_type, data):
    try:
        record = make_record(event_type, data, source="test", time=_AT)
    except Exception as exc:  # noqa: BLE001 - compared as type and reason
        return "refused", type(exc).__name__, str(exc)
    return "made", record


@pytest.mark.parametrize("event_type", sorted(TYPED_EVENTS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_making_a_record_with_the_typed_check_makes_and_refuses_exactly_as_the_schema_does(event_type, data):
    """make_record checks a typed type's data with the typed decoder (flk.events.envelope._typed_value) and
    leaves what it does not accept to the compiled JSON Schema: the same records, the same refusals."""
    instance = data.draw(_events(event_type))
    garbled = _garbled(data.draw, event_type, instance)
    try:
        candidate = orjson.loads(garbled)
    except orjson.JSONDecodeError:
        candidate = instance
    typed_outcome = made(event_type, candidate)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(envelope, "_typed_value", lambda *_: None)  # the reference way: the compiled JSON Schema
        reference_outcome = made(event_type, candidate)
    assert typed_outcome == reference_outcome


_TIME_CHARS = "0123456789-T:.Z+zt \n٣"  # (٣: a digit, not one of [0-9])


@st.composite
def near_times(draw) -> str:
    """Texts near the date-time pattern: a time of its shape (any digits, a fraction of up to eight digits or
    none, a zone or none) with a character or two replaced, and one inserted or dropped;
    or characters of its alphabet at random."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(_TIME_CHARS, max_size=36))
    digit = st.sampled_from("0123456789")
    chars = [draw(digit) if c == "d" else c for c in "dddd-dd-ddTdd:dd:dd"]
    fraction = draw(st.integers(-1, 8))
    if fraction >= 0:
        chars += ["."] + [draw(digit) for _ in range(fraction)]
    zone = draw(st.sampled_from(["Z", "offset", "none"]))
    if zone == "Z":
        chars.append("Z")
    elif zone == "offset":
        chars += [draw(st.sampled_from("+-")), draw(digit), draw(digit), ":", draw(digit), draw(digit)]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        chars[draw(st.integers(0, len(chars) - 1))] = draw(st.sampled_from(_TIME_CHARS))
    edit = draw(st.sampled_from(["none", "none", "insert", "drop"]))
    at = draw(st.integers(0, len(chars) - 1))
    if edit == "insert":
        chars.insert(at, draw(st.sampled_from(_TIME_CHARS)))
    elif edit == "drop":
        del chars[at]
    return "".join(chars)


@settings(max_examples=1000, deadline=None)
@given(text=near_times())
def test_a_time_is_read_by_its_shape_exactly_as_the_date_time_pattern_reads_it(text):
    """The date-time check reads the pattern character by character (flk/events/formats.py): it takes exactly
    what the schema's pattern takes, pure and compiled."""
    assert typed._f.date_time_shape_ok(text) == (formats._DATE_TIME.fullmatch(text) is not None)


_TIMES = ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00+01:00", "2026-03-01T10:00:00.5-05:30",
          "2026-03-01T10:00:00.123456Z", "2026-03-01T10:00:00.1234567+23:59"]


def single_edits(text: str):
    """``text`` with one character replaced by each of the alphabet's, inserted or dropped, at every place."""
    for at in range(len(text) + 1):
        for c in _TIME_CHARS:
            yield text[:at] + c + text[at + 1:]
            yield text[:at] + c + text[at:]
        yield text[:at] + text[at + 1:]


def test_every_single_edit_of_a_time_is_read_by_its_shape_exactly_as_the_date_time_pattern_reads_it():
    for text in _TIMES:
        for edited in single_edits(text):
            assert typed._f.date_time_shape_ok(edited) == (formats._DATE_TIME.fullmatch(edited) is not None), edited
