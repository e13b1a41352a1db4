"""Whatever arrives on a topic, decoding either yields a valid event or names the reason.
No other exception may escape (it would crash or stall a consumer), and what decodes is what the
published JSON Schema (checked with the reference implementation, jsonschema) accepts."""
from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from flk.events.contracts import ContractViolation, contracts
from flk.events.envelope import EnvelopeError, make_record, read_record
from flk.events.registry import registry
from tests.support.builders import a_visit

VALID = make_record("visit.recorded.v1", a_visit(), source="/t")
TOPICS = st.sampled_from([t.name for t in registry().topics])
HEADER_NAMES = st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type",
                                "ce_dataschema", "x-other", "CE_TYPE"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def decode_or_reason(topic, key, value, headers):
    """The decoded event, or None when it was refused, with a reason; a decoded event is valid."""
    try:
        event = read_record(topic, key, value, headers)
    except (EnvelopeError, ContractViolation) as exc:
        assert str(exc).strip(), "a reason is always given"
        return None
    assert schema_accepts(event.event_type, event.data), "only what the schema accepts is decoded"
    return event


def schema_accepts(event_type: str, data) -> bool:
    return contracts().reference_validator(event_type).is_valid(data)


@settings(max_examples=300, deadline=None)
@given(topic=TOPICS, key=st.none() | st.binary(max_size=40), value=st.none() | st.binary(max_size=200),
       headers=st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=40)), max_size=8))
def test_arbitrary_bytes_and_headers_are_refused_with_a_reason(topic, key, value, headers):
    assert decode_or_reason(topic, key, value, headers) is None


@settings(max_examples=300, deadline=None)
@given(data=json_values, key=st.binary(min_size=1, max_size=40))
def test_arbitrary_json_under_valid_headers_is_refused_with_a_reason(data, key):
    decoded = decode_or_reason(VALID.topic, key, json.dumps(data).encode(), VALID.headers)
    assert (decoded is None) == (not schema_accepts("visit.recorded.v1", data))


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(sorted(a_visit())), replacement=json_values)
@example(field="profession", replacement="sjukskoterska")  # still valid: decoded as it is
@example(field="occurred_at", replacement="not a time")  # refused
def test_any_single_wrong_field_in_a_visit_is_refused_or_still_valid(field, replacement):
    visit = {**a_visit(), field: replacement}
    result = decode_or_reason(VALID.topic, VALID.key, json.dumps(visit).encode(), VALID.headers)
    if result is not None:
        assert result.data == visit


def test_a_huge_payload_is_refused_with_a_reason():
    visit = a_visit(visit_id="x" * 5_000_000)
    assert decode_or_reason(VALID.topic, VALID.key, json.dumps(visit).encode(), VALID.headers) is None
