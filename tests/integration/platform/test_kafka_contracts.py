"""Events on the real broker: a client we did not write (kcat) publishes; our consumer reads,
validates, and dead-letters what is malformed with its reason."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from flk.events import dlq
from flk.events.envelope import make_record, read_record, usual_reader
from flk.events.producer import publish
from flk.events.registry import registry
from tests.conftest import consume_all
from tests.support.builders import a_patient_key, a_visit
from tests.support.kafka import run_consumer_until
from tests.support.required_tools import require_tool

VISITS = registry().topic_for("visit.recorded.v1").name

@pytest.fixture(autouse=True)
def _kcat_installed() -> None:
    require_tool("kcat")


def kcat_produce(bootstrap: str, topic: str, value: bytes, key: str | None, headers: dict[str, str]) -> None:
    argv = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-D", "\x1e"]
    if key is not None:
        argv += ["-k", key]
    for name, header_value in headers.items():
        argv += ["-H", f"{name}={header_value}"]
    subprocess.run(argv, input=value, check=True, timeout=30)


def ce_headers(event_type: str = "se.flk.visit.recorded.v1", event_id: str | None = None) -> dict[str, str]:
    return {
        "ce_specversion": "1.0",
        "ce_id": event_id or str(uuid.uuid4()),
        "ce_source": "/ehr/kcat",
        "ce_type": event_type,
        "ce_time": "2026-03-01T09:31:00Z",
        "content-type": "application/json",
    }


async def test_visit_published_with_kcat_is_read_and_validated_by_our_consumer(kafka_bootstrap, topic_prefix, producer):
    visit = a_visit()
    event_id = str(uuid.uuid4())
    kcat_produce(kafka_bootstrap, topic_prefix + VISITS, json.dumps(visit).encode(), visit["patient_key"],
                 ce_headers(event_id=event_id))

    received = await run_consumer_until(kafka_bootstrap, topic_prefix, (VISITS,), producer, lambda r: len(r) >= 1)

    assert len(received) == 1
    envelope = received[0]
    assert envelope.id == event_id
    assert envelope.event_type == "visit.recorded.v1"
    assert envelope.key == visit["patient_key"]
    assert envelope.data == visit
    assert await consume_all(kafka_bootstrap, topic_prefix + VISITS + ".dlq", expected=1, timeout_s=2) == []


async def test_a_record_our_producer_wrote_is_taken_by_the_usual_read_as_a_consumer_hands_it_over(
        kafka_bootstrap, topic_prefix, producer):
    """The usual read (flk/events/usual.py) is the stream workers' fast path: it must take records as aiokafka's
    consumer gives them (headers as a tuple), or every record silently pays for a second read."""
    visit = a_visit()
    record = make_record("visit.recorded.v1", visit, source="/ehr/tests")
    await publish(producer, record, topic_prefix)

    [consumed] = await consume_all(kafka_bootstrap, topic_prefix + VISITS, expected=1)

    taken = usual_reader()(VISITS, consumed.key, consumed.value, consumed.headers)
    assert taken is not None
    envelope = read_record(VISITS, consumed.key, consumed.value, consumed.headers)
    assert taken[1] == envelope.event_type and taken[5] == envelope.data == visit


MALFORMED = {
    "not_json": (b'{"visit_id": "v1", "patient_', "key", ce_headers(), "value is not valid JSON"),
    "wrong_schema": (json.dumps({**a_visit(), "contact_type": "telepathy"}).encode(), "key", ce_headers(),
                     "data.contact_type must be one of"),
    "missing_field": (json.dumps({k: v for k, v in a_visit().items() if k != "occurred_at"}).encode(), "key",
                      ce_headers(), "must contain"),
    "unknown_type": (json.dumps(a_visit()).encode(), "key", ce_headers("se.flk.visit.teleported.v1"),
                     "does not belong on topic"),
    "foreign_type": (json.dumps(a_visit()).encode(), "key", ce_headers("com.example.visit"), "unknown event type"),
    "missing_key": (json.dumps(a_visit()).encode(), None, ce_headers(), "message has no key"),
    "no_cloudevents_headers": (json.dumps(a_visit()).encode(), "key", {}, "missing CloudEvents header"),
    "key_mismatch": (json.dumps(a_visit()).encode(), a_patient_key(999), ce_headers(),
                     "message key does not match data.patient_key"),
}


async def test_malformed_events_land_in_the_dlq_with_reason_and_the_consumer_goes_on(
    kafka_bootstrap, topic_prefix, producer
):
    topic = topic_prefix + VISITS
    for value, key, headers, _ in MALFORMED.values():
        if key == "key":
            key = a_patient_key()
        kcat_produce(kafka_bootstrap, topic, value, key, headers)
    good = a_visit()
    kcat_produce(kafka_bootstrap, topic, json.dumps(good).encode(), good["patient_key"], ce_headers())

    received = await run_consumer_until(kafka_bootstrap, topic_prefix, (VISITS,), producer, lambda r: len(r) >= 1)
    letters = await consume_all(kafka_bootstrap, topic + ".dlq", expected=len(MALFORMED))

    assert [e.data for e in received] == [good], "the valid event after the bad ones is handled"
    assert len(letters) == len(MALFORMED)
    by_value = {}
    for letter in letters:
        headers = dict(letter.headers)
        assert headers[dlq.SOURCE_TOPIC] == topic.encode()
        assert int(headers[dlq.SOURCE_OFFSET]) >= 0 and int(headers[dlq.SOURCE_PARTITION]) >= 0
        assert headers[dlq.CONSUMER] == b"test-consumer"
        by_value.setdefault(letter.value, []).append(headers[dlq.REASON].decode())
    for case, (value, _, headers, expected_reason) in MALFORMED.items():
        reasons = by_value.get(value, [])
        assert any(expected_reason in r for r in reasons), f"{case}: {reasons}"
    # the original headers travel with the dead letter
    letter = next(l for l in letters if l.value == MALFORMED["wrong_schema"][0])
    assert dict(letter.headers)["ce_source"] == b"/ehr/kcat"
