"""The continuity worker on the real broker: state per patient, only-on-change events, DLQ."""
from __future__ import annotations

from datetime import date

import orjson
import pytest

from flk.events import dlq
from flk.events.envelope import read_record
from flk.events.registry import registry
from tests.conftest import consume_all
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key

from continuity_stream import (
    DOCTOR_2, cancellation, eventually, flk_assigned, indices_of, listing, publish, running_worker,
    service_settings, visit,
)

INDICES_TOPIC = registry().topic_for("continuity.indices_changed.v1").name
VISITS_TOPIC = registry().topic_for("visit.recorded.v1").name


async def indices_events(bootstrap: str, prefix: str, expected: int, timeout_s: float = 5.0) -> list[dict]:
    records = await consume_all(bootstrap, prefix + INDICES_TOPIC, expected, timeout_s=timeout_s)
    return [read_record(INDICES_TOPIC, r.key, r.value, r.headers).data for r in records]


async def test_a_duplicate_visit_changes_nothing_and_no_second_event_is_sent(kafka_bootstrap, topic_prefix, producer):
    patient = a_patient_key(101)
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient), visit(patient, "v1"), visit(patient, "v2", DOCTOR_2))
        await eventually(lambda: worker.processed_events >= 3)
        before = worker.processor.patient(patient)[0]
        sent = len(await indices_events(kafka_bootstrap, topic_prefix, expected=3, timeout_s=1.0))
        await publish(producer, topic_prefix, visit(patient, "v1"), visit(patient, "v2", DOCTOR_2))
        await eventually(lambda: worker.processed_events >= 5)

        assert worker.processor.patient(patient)[0] == before
    events = await indices_events(kafka_bootstrap, topic_prefix, expected=sent + 1, timeout_s=1.0)
    assert len(events) == sent  # the duplicates sent nothing
    assert (events[-1]["care_unit_id"], events[-1]["total"]["visits"]) == (UNIT_A, 2)


async def test_a_cancelled_visit_is_removed_from_the_indices(kafka_bootstrap, topic_prefix, producer):
    patient = a_patient_key(102)
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient), visit(patient, "v1"), visit(patient, "v2"),
                      visit(patient, "v3", DOCTOR_2))
        await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 3 and worker.processed_events >= 4)
        await publish(producer, topic_prefix, cancellation(patient, "v3"))
        indices = await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 2 and i)

        assert indices.doctor.coc == 1.0
        await publish(producer, topic_prefix, visit(patient, "v3", DOCTOR_2))  # redelivered after cancellation
        await eventually(lambda: worker.processed_events >= 6)
        assert indices_of(worker, patient).doctor.visits == 2


async def test_a_late_visit_is_placed_in_time_order(kafka_bootstrap, topic_prefix, producer):
    patient = a_patient_key(103)
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient),
                      visit(patient, "a1", DOCTOR_1, "2026-01-10T09:00:00Z"),
                      visit(patient, "a2", DOCTOR_1, "2026-03-10T09:00:00Z"))
        await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 2 and worker.processed_events >= 3)
        await publish(producer, topic_prefix, visit(patient, "b-late", DOCTOR_2, "2026-02-10T09:00:00Z"))
        indices = await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 3 and i)

    # in time order A B A: no consecutive pair with the same doctor (appended it would be A A B: 0.5)
    assert indices.doctor.secon == 0.0
    assert indices.doctor.coc == pytest.approx(1 / 3)


async def test_visits_leave_the_window_as_the_days_pass_without_a_replay(kafka_bootstrap, topic_prefix, producer):
    patient = a_patient_key(104)
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient),
                      visit(patient, "old", DOCTOR_2, "2024-09-20T09:00:00Z"),  # leaves after 2026-03-20
                      visit(patient, "n1", DOCTOR_1, "2026-01-10T09:00:00Z"),
                      visit(patient, "n2", DOCTOR_1, "2026-02-10T09:00:00Z"))
        await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 3 and worker.processed_events >= 4)
        consumed = worker.processed_events

        await worker.advance_to(date(2026, 3, 21))  # what the daily timer does when the date moves

        indices = indices_of(worker, patient)
        assert (indices.as_of, indices.doctor.visits, indices.doctor.coc) == (date(2026, 3, 21), 2, 1.0)
        assert worker.processed_events == consumed  # nothing was replayed
        assert len(worker.processor.patient(patient)[0].state.visits) == 2  # the state shrank
    events = await indices_events(kafka_bootstrap, topic_prefix, expected=99, timeout_s=1.0)
    assert [(e["as_of"], e["doctor"]["visits"]) for e in events][-2:] == [("2026-03-15", 3), ("2026-03-21", 2)]


async def test_invalid_events_are_dead_lettered_with_the_shared_reasons_and_the_worker_goes_on(
        kafka_bootstrap, topic_prefix, producer):
    patient = a_patient_key(105)
    good = visit(patient, "ok")
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        topic = topic_prefix + VISITS_TOPIC
        await producer.send_and_wait(topic, key=patient.encode(), value=b"not json", headers=good.headers)
        bad = orjson.loads(good.value)
        bad["profession"] = ""
        await producer.send_and_wait(topic, key=patient.encode(), value=orjson.dumps(bad), headers=good.headers)
        await publish(producer, topic_prefix, listing(patient), good)
        await eventually(lambda: (i := indices_of(worker, patient)) and i.total.visits == 1)

    letters = await consume_all(kafka_bootstrap, topic + ".dlq", expected=2)
    assert len(letters) == 2
    headers = [dict(r.headers) for r in letters]
    assert all(set(dlq.DLQ_HEADERS) <= set(h) for h in headers)
    assert [h[dlq.CONSUMER] for h in headers] == [b"continuity-worker"] * 2
    reasons = sorted(h[dlq.REASON].decode() for h in headers)
    assert "value is not valid JSON" in reasons[0] and "visit.recorded.v1" in reasons[1]


async def test_listing_and_flk_events_set_the_unit_that_counts_and_the_kpc(kafka_bootstrap, topic_prefix, producer):
    patient = a_patient_key(106)
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient), flk_assigned(patient, DOCTOR_1),
                      visit(patient, "v1", DOCTOR_1), visit(patient, "v2", DOCTOR_2),
                      visit(patient, "v3", DOCTOR_1, unit="SE2321000016-VCB2"))  # another unit: not counted
        indices = await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 2 and i)
    assert indices.doctor.kpc == 0.5
    assert worker.processor.patient(patient)[0].doctor_key() == DOCTOR_1
    assert UNIT_A == worker.processor.patient(patient)[0].state.listing_unit_id


def unit_register(unit: str, main_unit: str | None = None, recorded_at: str = "2026-01-01T08:00:00Z"):
    from flk.events.envelope import make_record

    return make_record("care_unit.contracted.v1", {
        "care_unit_id": unit, "name": f"Enhet {unit[-4:]}", "region_code": "19", "contract_from": "2015-01-01",
        "main_unit_id": main_unit, "filial_kind": "lakarfilial" if main_unit else None, "recorded_at": recorded_at},
        source="region/test")


async def test_visits_at_a_filial_count_as_visits_at_its_main_unit_from_the_register_known_at_start_and_later(
        kafka_bootstrap, topic_prefix, producer):
    """Seed 004: a filial is a sub-unit of its main unit; SKR's "visits at the listing unit" takes in its
    filials. A relation in the register when the worker starts counts at once; one that arrives later
    recomputes every patient."""
    early, late = "SE2321000016-VCA1F", "SE2321000016-VCA1G"
    patient = a_patient_key(107)
    await publish(producer, topic_prefix, unit_register(early, UNIT_A))
    settings = service_settings(kafka_bootstrap, topic_prefix)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient), visit(patient, "v1", DOCTOR_1),
                      visit(patient, "v2", DOCTOR_1, unit=early), visit(patient, "v3", DOCTOR_2, unit=late))
        indices = await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 2 and i)
        assert indices.doctor.coc == 1.0, "the visit at the filial counts with the one at the main unit"

        await publish(producer, topic_prefix, unit_register(late, UNIT_A))
        indices = await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 3 and i)
        assert indices.doctor.coc == pytest.approx(1 / 3)
        await eventually(lambda: any(s.doctor_coc is not None and s.doctor_coc < 0.5
                                     for s in worker.processor.all_summaries()))
