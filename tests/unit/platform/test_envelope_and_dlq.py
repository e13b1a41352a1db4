"""CloudEvents binary-mode envelope and dead-letter records, without a broker."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flk.events import dlq
from flk.events.contracts import ContractViolation
from flk.events.envelope import EnvelopeError, make_record, read_record
from tests.support.builders import a_patient_key, a_visit


def test_record_round_trips_with_cloudevents_headers_and_patient_key_as_kafka_key():
    visit = a_visit()
    record = make_record("visit.recorded.v1", visit, source="/ehr/cosmic")

    headers = dict(record.headers)
    assert record.topic == "ehr.visits.v1"
    assert record.key == visit["patient_key"].encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"se.flk.visit.recorded.v1"
    assert headers["ce_source"] == b"/ehr/cosmic"
    assert headers["content-type"] == b"application/json"
    envelope = read_record(record.topic, record.key, record.value, record.headers)
    assert envelope.data == visit and envelope.id == record.event_id and envelope.key == visit["patient_key"]


def test_the_same_fact_gets_the_same_event_id_so_replays_dedupe():
    visit = a_visit()
    assert make_record("visit.recorded.v1", visit, source="/a").event_id == \
        make_record("visit.recorded.v1", dict(visit), source="/b").event_id
    assert make_record("visit.recorded.v1", {**visit, "visit_id": "other"}, source="/a").event_id != \
        make_record("visit.recorded.v1", visit, source="/a").event_id


def test_invalid_data_is_refused_before_it_is_published():
    with pytest.raises(ContractViolation, match="contact_type"):
        make_record("visit.recorded.v1", a_visit(contact_type="brevduva"), source="/x")


def test_a_personnummer_is_refused_where_a_patient_key_belongs():
    with pytest.raises(ContractViolation, match="patient_key"):
        make_record("visit.recorded.v1", a_visit(patient_key="19121212-1212"), source="/x")


def test_event_on_the_wrong_topic_is_refused():
    record = make_record("visit.recorded.v1", a_visit(), source="/x")
    with pytest.raises(EnvelopeError, match="does not belong on topic listing.commands.v1"):
        read_record("listing.commands.v1", record.key, record.value, record.headers)


def test_error_reasons_never_echo_field_values():
    visit = a_visit(contact_type="19121212-1212")
    record = make_record("visit.recorded.v1", a_visit(), source="/x")
    import json

    with pytest.raises(ContractViolation) as caught:
        read_record(record.topic, record.key, json.dumps(visit).encode(), record.headers)
    assert "19121212" not in str(caught.value)


def test_dead_letter_keeps_original_bytes_and_headers_and_says_why_and_where():
    message = dlq.FailedMessage("ehr.visits.v1", 3, 42, b"k", b"\x00garbage", (("ce_id", b"1"), ("x", b"y")))
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    letter = dlq.dead_letter_for(message, "value is not valid JSON", "continuity", now)

    headers = dict(letter.headers)
    assert letter.topic == "ehr.visits.v1.dlq"
    assert (letter.key, letter.value) == (b"k", b"\x00garbage")
    assert headers["ce_id"] == b"1" and headers["x"] == b"y"
    assert headers[dlq.REASON] == b"value is not valid JSON"
    assert (headers[dlq.SOURCE_TOPIC], headers[dlq.SOURCE_PARTITION], headers[dlq.SOURCE_OFFSET]) == \
        (b"ehr.visits.v1", b"3", b"42")
    assert headers[dlq.CONSUMER] == b"continuity"
    assert headers[dlq.FAILED_AT] == b"2026-01-02T03:04:05+00:00"


def test_patient_keys_are_pseudonymous_and_stable():
    assert a_patient_key(1) == a_patient_key(1) != a_patient_key(2)
    assert a_patient_key(1).startswith("pk1_") and len(a_patient_key(1)) == 30
