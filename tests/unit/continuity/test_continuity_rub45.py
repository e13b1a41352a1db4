"""The RUB 4–5 cohort ('rub45'): the patient's current RUB band comes from `risk.assessed.v1` (the latest
assessment, as the notifier decides it), is kept in the per-patient record, and puts the patient in the
region's, unit's and doctor's 'rub45' rows beside 'all' and 'sabo' — pure handlers, codec, aggregation and
the stream processor with a memory store (no Kafka)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.continuity.adapters.store import MemoryStore
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.bootstrap import input_topics
from services.continuity.service_layer.aggregates import Summary, aggregate, patient_rows
from services.continuity.service_layer.handlers import HANDLERS, effective_day
from services.continuity.service_layer.processor import KNOWN_UNTIL, Processor
from services.continuity.service_layer.record import (
    EMPTY_RECORD,
    MAIN_CARE_HERE,
    MAIN_CARE_NOT_RECORDED,
    decode_record,
    encode_record,
)
from tests.integration.continuity.continuity_stream import (
    AS_OF,
    DOCTOR_2,
    flk_assigned,
    listing,
    risk,
    sabo,
    visit,
)
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key
from tests.support.kafka import ConsumedRecord

pytestmark = pytest.mark.unit

SETTINGS = ContinuitySettings()
REGION = "19"
P1, P2 = a_patient_key(451), a_patient_key(452)


def assessed(record, rub: int, computed_at: str):
    data = {"assessment_id": f"a-{computed_at}", "patient_key": P1, "rub": rub, "acg_version": "12.1",
            "lookback_months": 12, "computed_at": computed_at}
    return HANDLERS["risk.assessed.v1"](record, data, 0, AS_OF, SETTINGS)


class Stream:
    """A processor over one partition, fed the records in order (each offset once, as from Kafka)."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()
        self.processor = Processor(SETTINGS, self.store, AS_OF, region_id=REGION)
        self.processor.open_partition(0)
        self.offset = 0

    def records(self, *records) -> list[ConsumedRecord]:
        out = []
        for r in records:
            out.append(ConsumedRecord(r.topic, 0, self.offset, r.key, r.value, tuple(r.headers)))
            self.offset += 1
        return out

    def process(self, batch: list[ConsumedRecord]):
        out = self.processor.process(batch)
        assert not out.dead, [d.reason for d in out.dead]
        self.store.commit(0, out.writes.get(0, {}), out.offsets.get(0, {}))
        return out

    def rows(self, cohort: str) -> dict[tuple[str, str], tuple[int, int, float | None]]:
        return {(r.level, r.entity_id): (r.listed_patients, r.eligible_doctor, r.mean_coc_doctor)
                for r in self.processor.aggregates() if r.cohort == cohort}


def an_eligible_patient(patient: str, doctor: str = DOCTOR_1):
    """Listed at unit A with an FLK and three doctor visits there (eligible; COC 1.0 with one doctor)."""
    return (listing(patient), flk_assigned(patient, doctor),
            *(visit(patient, f"{patient[-6:]}-{i}", doctor) for i in range(3)))


# ------------------------------------------------------------------ the band in the record


def test_a_patient_assessed_rub_4_joins_the_rub45_cohort_and_leaves_it_when_reassessed_lower():
    stream = Stream()
    stream.process(stream.records(*an_eligible_patient(P1), risk(P1, 4, "2026-01-01T03:00:00Z")))
    assert stream.rows("rub45") == {("region", REGION): (1, 1, 1.0), ("unit", UNIT_A): (1, 1, 1.0),
                                    ("doctor", DOCTOR_1): (1, 1, 1.0)}

    stream.process(stream.records(risk(P1, 2, "2026-03-01T03:00:00Z")))

    assert stream.rows("rub45") == {}
    assert stream.rows("all")[("region", REGION)] == (1, 1, 1.0)  # still in 'all'


def test_rub_5_is_in_the_cohort_and_rub_3_or_no_assessment_is_not():
    bands = {None: False, 0: False, 3: False, 4: True, 5: True}
    for band, member in bands.items():
        record = EMPTY_RECORD if band is None else assessed(EMPTY_RECORD, band, "2026-01-01T03:00:00Z")
        assert record.rub45() is member, band


def test_a_later_assessment_replaces_the_band_and_an_older_one_arriving_late_does_not():
    january = assessed(EMPTY_RECORD, 5, "2026-01-01T03:00:00Z")
    march = assessed(january, 3, "2026-03-01T03:00:00+01:00")
    late_february = assessed(march, 4, "2026-02-01T03:00:00Z")

    assert (january.rub, march.rub) == (5, 3)
    assert late_february is march  # older than the one held: the band stays 3


def test_an_assessment_at_the_time_of_the_one_held_changes_nothing_so_a_redelivery_is_harmless():
    held = assessed(EMPTY_RECORD, 4, "2026-01-01T03:00:00Z")
    # the same instant in another offset, as the notifier decides: the first one read stands
    assert assessed(held, 4, "2026-01-01T03:00:00Z") is held
    assert assessed(held, 1, "2026-01-01T04:00:00+01:00") is held


def test_an_assessment_dates_the_state_by_when_the_acg_run_computed_it():
    stream = Stream()
    out = stream.process(stream.records(risk(P1, 4, "2026-03-10T03:00:00+01:00")))

    assert effective_day("risk.assessed.v1", {"computed_at": "2026-03-10T03:00:00+01:00"}) == "2026-03-10"
    assert out.offsets[0][KNOWN_UNTIL] == date(2026, 3, 10).toordinal()
    assert stream.processor.known_until() == date(2026, 3, 10)


def test_the_worker_consumes_the_acg_risk_assessment_topic():
    assert "acg.risk-assessments.v1" in input_topics()


# ------------------------------------------------------------------ the record codec


def test_the_record_codec_keeps_the_rub_band_and_when_it_was_assessed():
    record = replace(assessed(EMPTY_RECORD, 5, "2026-01-01T03:00:00Z"), coordinating=DOCTOR_1,
                     residences=((7, 738000, 0, MAIN_CARE_HERE),), fingerprint=42)
    back = decode_record(encode_record(record))

    assert back == record
    assert (back.rub, back.rub45()) == (5, True)
    assert decode_record(encode_record(EMPTY_RECORD)).rub is None


def test_a_record_written_before_the_band_was_kept_reads_as_not_assessed():
    import struct

    from services.continuity.adapters.state_codec import encode_state

    coordinating = DOCTOR_1.encode()
    version_1 = b"".join((struct.pack("<BQBB", 1, 42, 1, len(coordinating)), coordinating,
                          struct.pack("<QII", 7, 738000, 0), encode_state(EMPTY_RECORD.state)))
    record = decode_record(version_1)

    assert (record.coordinating, record.residences, record.fingerprint) == (
        DOCTOR_1, ((7, 738000, 0, MAIN_CARE_NOT_RECORDED),), 42)
    assert (record.rub, record.rub45()) == (None, False)
    assert decode_record(encode_record(assessed(record, 4, "2026-01-01T03:00:00Z"))).rub == 4


# ------------------------------------------------------------------ aggregation


def test_a_patient_in_sabo_with_rub_5_counts_in_all_three_cohorts_and_the_others_only_where_they_belong():
    summaries = {
        b"pk1_a": Summary(UNIT_A, DOCTOR_1, True, True, 1.0, True, 0.5, rub45=True),
        b"pk1_b": Summary(UNIT_A, DOCTOR_2, False, True, 0.2, True, 0.1, rub45=True),
        b"pk1_c": Summary(UNIT_A, DOCTOR_1, True, True, 0.6, True, 0.3),
        b"pk1_d": Summary(UNIT_A, DOCTOR_2, False, True, 0.4, True, 0.2),
    }
    rows = {(r.level, r.entity_id, r.cohort): r for r in aggregate(summaries.values(), REGION)}

    assert {k: r.listed_patients for k, r in rows.items() if k[0] == "unit"} == {
        ("unit", UNIT_A, "all"): 4, ("unit", UNIT_A, "sabo"): 2, ("unit", UNIT_A, "rub45"): 2}
    assert rows[("region", REGION, "rub45")].mean_coc_doctor == pytest.approx(0.6)
    assert (rows[("doctor", DOCTOR_1, "rub45")].listed_patients, rows[("doctor", DOCTOR_2, "rub45")].listed_patients) \
        == (1, 1)
    assert {p.patient_key: p.rub45 for p in patient_rows(summaries.items())} == {
        "pk1_a": True, "pk1_b": True, "pk1_c": False, "pk1_d": False}


def test_sabo_and_rub45_are_independent_cohorts_in_the_stream():
    stream = Stream()
    stream.process(stream.records(*an_eligible_patient(P1), sabo(P1),
                                  *an_eligible_patient(P2, DOCTOR_2), risk(P2, 5)))

    assert set(stream.rows("sabo")) == {("region", REGION), ("unit", UNIT_A), ("doctor", DOCTOR_1)}
    assert set(stream.rows("rub45")) == {("region", REGION), ("unit", UNIT_A), ("doctor", DOCTOR_2)}


# ------------------------------------------------------------------ restart and replay


def test_a_replayed_batch_counts_the_patient_once_and_writes_nothing():
    stream = Stream()
    batch = stream.records(*an_eligible_patient(P1), risk(P1, 4, "2026-01-01T03:00:00Z"),
                           risk(P1, 5, "2026-02-01T03:00:00Z"))
    stream.process(batch)
    before = stream.rows("rub45")

    again = stream.process(batch)  # a crash after the store commit, before the group commit

    assert not again.writes and not again.outgoing
    assert stream.rows("rub45") == before == {("region", REGION): (1, 1, 1.0), ("unit", UNIT_A): (1, 1, 1.0),
                                              ("doctor", DOCTOR_1): (1, 1, 1.0)}


def test_a_worker_restarted_on_its_stored_state_keeps_the_band():
    store = MemoryStore()
    first = Stream(store)
    first.process(first.records(*an_eligible_patient(P1), risk(P1, 4, "2026-01-01T03:00:00Z")))
    first.processor.close_partition(0)

    restarted = Stream(store)  # opens the partition: every patient read back from the table

    assert restarted.processor.patient(P1)[0].rub == 4
    assert restarted.rows("rub45")[("unit", UNIT_A)] == (1, 1, 1.0)
