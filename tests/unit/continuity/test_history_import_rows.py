"""The history import's pure parts: extract rows → contract events, pseudonymisation, bad rows, dry run."""
from __future__ import annotations

import asyncio
import csv
from datetime import date
from pathlib import Path

import orjson
import pytest

from flk.security.pseudonym import parse_person_id, patient_key
from tools.simulator.generate import personnummer12
from services.continuity.adapters.visit_extract import BadRow, PatientKeys, read_extract
from services.continuity.service_layer.history_import import import_rows, visit_events

pytestmark = pytest.mark.unit

KEY = b"test-pseudonym-key"
UNIT = "SE2321000016-VCA1"
DOCTOR = "SE2321000016-L001"
HEADER = ["patient_id", "visit_id", "practitioner_id", "profession", "care_unit_id", "occurred_at", "contact_type",
          "cancelled_at", "cancel_reason", "source_system"]
PERSON = personnummer12(date(1948, 5, 17), 234)


def extract(tmp_path: Path, *rows: list[str], header: list[str] = HEADER) -> Path:
    path = tmp_path / "extract.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def row(patient=PERSON, visit="v1", practitioner=DOCTOR, profession="läkare", occurred="2025-03-01T09:30:00+01:00",
        contact="besok", cancelled="", reason="", system="cosmic") -> list[str]:
    return [patient, visit, practitioner, profession, UNIT, occurred, contact, cancelled, reason, system]


def parsed(path: Path):
    return list(read_extract(path, PatientKeys(lambda: KEY), for_events=True))


def test_a_personnummer_becomes_the_patient_key_and_a_row_an_ordinary_visit_event(tmp_path):
    [(line, visit)] = parsed(extract(tmp_path, row()))
    expected_key = patient_key(parse_person_id(PERSON), KEY)
    assert (line, visit.patient_key) == (2, expected_key)
    [record] = visit_events(visit)
    data = orjson.loads(record.value)
    assert record.topic == "ehr.visits.v1" and record.key == expected_key.encode()
    assert data == {"visit_id": "v1", "patient_key": expected_key, "practitioner_id": DOCTOR, "profession": "läkare",
                    "care_unit_id": UNIT, "contact_type": "besok", "occurred_at": "2025-03-01T09:30:00+01:00",
                    "source_system": "cosmic"}
    assert PERSON not in record.value.decode() and PERSON[2:] not in str(record.headers)


def test_a_cancelled_row_is_its_visit_followed_by_its_cancellation(tmp_path):
    [(_, visit)] = parsed(extract(tmp_path, row(cancelled="2025-03-02T10:00:00Z", reason="no_show")))
    recorded, cancelled = visit_events(visit)
    assert recorded.event_id != cancelled.event_id
    assert orjson.loads(cancelled.value) == {"visit_id": "v1", "patient_key": visit.patient_key,
                                             "cancelled_at": "2025-03-02T10:00:00Z", "reason": "no_show"}


def test_event_ids_are_the_same_for_the_same_visit_in_a_second_import(tmp_path):
    path = extract(tmp_path, row(), row(visit="v2"))
    first = [r.event_id for _, v in parsed(path) for r in visit_events(v)]
    again = [r.event_id for _, v in parsed(path) for r in visit_events(v)]
    assert first == again and len(set(first)) == 2


def test_a_date_without_a_time_is_midnight_swedish_time_and_a_naive_time_is_swedish_time(tmp_path):
    visits = [v for _, v in parsed(extract(tmp_path, row(occurred="2025-07-01"), row(visit="v2", occurred="2025-01-10T08:15")))]
    assert [orjson.loads(visit_events(v)[0].value)["occurred_at"] for v in visits] == [
        "2025-07-01T00:00:00+02:00", "2025-01-10T08:15:00+01:00"]


@pytest.mark.parametrize("bad, reason", [
    (row(patient="19480517-2340"), "patient_id is not a valid personnummer or samordningsnummer"),
    (row(patient="p-17"), "patient_id is neither a patient key"),
    (row(occurred="2025-13-01"), "bad occurred_at '2025-13-01'"),
    (row(contact="brev"), "contact_type must be one of besok, telefon, digital, hembesok"),
    (row(contact=""), "empty contact_type"),
    (row(practitioner="Dr Svensson"), "practitioner_id must match pattern"),
    (row(reason="oops", cancelled="2025-03-02"), "cancel_reason must be one of"),
    (row()[:4], "expected 10 fields, got 4"),
])
def test_a_bad_row_is_named_with_its_reason_and_never_with_the_personnummer(tmp_path, bad, reason):
    [(line, result)] = parsed(extract(tmp_path, bad))
    if not isinstance(result, BadRow):
        with pytest.raises(BadRow) as caught:
            visit_events(result)
        result = caught.value
    assert line == 2 and reason in str(result)
    assert "19480517" not in str(result) and "480517" not in str(result)


def test_a_dry_run_checks_every_row_counts_and_publishes_nothing(tmp_path):
    path = extract(tmp_path, row(), row(visit="v2", cancelled="2025-03-05"), row(visit="v3", occurred="yesterday"),
                   row(visit="v4", patient=personnummer12(date(1990, 1, 2), 17)))
    bad: list[tuple[int, str]] = []
    summary = asyncio.run(import_rows(parsed(path), None, on_bad_row=lambda line, why: bad.append((line, why))))
    assert (summary.rows, summary.visits, summary.cancelled, summary.bad, summary.published) == (4, 3, 1, 1, 0)
    assert summary.patients == 2 and (summary.first_day, summary.last_day) == (date(2025, 3, 1), date(2025, 3, 1))
    assert bad == [(4, "bad occurred_at 'yesterday': not an ISO date or date-time")]


def test_an_import_sends_batches_in_file_order_with_each_cancellation_after_its_visit(tmp_path):
    path = extract(tmp_path, *(row(visit=f"v{i}", cancelled="2025-03-02" if i == 1 else "") for i in range(5)))
    sent: list[list] = []

    async def send(batch):
        sent.append(list(batch))

    summary = asyncio.run(import_rows(parsed(path), send, on_bad_row=lambda *a: None, batch_size=2))
    types = [orjson.loads(r.value).get("cancelled_at") is not None for b in sent for r in b]
    ids = [orjson.loads(r.value)["visit_id"] for b in sent for r in b]
    assert summary.published == 6 and ids == ["v0", "v1", "v1", "v2", "v3", "v4"]
    assert types == [False, False, True, False, False, False]
