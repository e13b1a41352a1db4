"""G4's cohort ('sabo') is G3's population: SÄBO residents "som där får sin huvudsakliga hälso- och
sjukvård" (seed 001 states the qualifier once, for both the 80 % FLK share and the significant increase of
the doctor continuity index). `residence.recorded.v1` carries it as the optional `main_care_in_residence`;
a resident recorded as getting their main care elsewhere is not in the cohort, one whose fact does not say
is (as G3 counts them). Pure handlers, the record codec and the stream processor with a memory store."""
from __future__ import annotations

import struct
from datetime import date

import pytest

from services.continuity.adapters.state_codec import encode_state
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.service_layer.handlers import HANDLERS
from services.continuity.service_layer.record import (
    EMPTY_RECORD,
    MAIN_CARE_ELSEWHERE,
    MAIN_CARE_HERE,
    MAIN_CARE_NOT_RECORDED,
    decode_record,
    encode_record,
)
from tests.integration.continuity.continuity_stream import AS_OF, sabo
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key
from tests.unit.continuity.test_continuity_rub45 import REGION, Stream, an_eligible_patient

pytestmark = pytest.mark.unit

SETTINGS = ContinuitySettings()
P1, P2, P3 = a_patient_key(461), a_patient_key(462), a_patient_key(463)


def residence(record, main_care: bool | None, sabo_to: str | None = None):
    data = {"residence_id": "r-1", "patient_key": P1, "sabo_from": "2024-06-01", "sabo_to": sabo_to,
            "recorded_at": "2024-06-01T08:00:00Z"}
    if main_care is not None:
        data["main_care_in_residence"] = main_care
    return HANDLERS["residence.recorded.v1"](record, data, 0, AS_OF, SETTINGS)


def test_G4_cohort_counts_only_sabo_residents_who_get_their_main_care_there():
    stream = Stream()
    stream.process(stream.records(
        *an_eligible_patient(P1), sabo(P1, main_care_in_residence=True),
        *an_eligible_patient(P2), sabo(P2, main_care_in_residence=False),
    ))

    assert stream.rows("sabo") == {("region", REGION): (1, 1, 1.0), ("unit", UNIT_A): (1, 1, 1.0),
                                   ("doctor", DOCTOR_1): (1, 1, 1.0)}
    assert stream.rows("all")[("region", REGION)] == (2, 2, 1.0)  # both stay in 'all'


def test_a_residence_without_the_qualifier_counts_in_the_G4_cohort_as_G3_counts_it():
    stream = Stream()
    stream.process(stream.records(*an_eligible_patient(P3), sabo(P3)))

    assert stream.rows("sabo")[("region", REGION)] == (1, 1, 1.0)


def test_a_resident_recorded_as_getting_main_care_elsewhere_still_lives_in_sabo_but_is_not_in_the_cohort():
    here, elsewhere, unknown = residence(EMPTY_RECORD, True), residence(EMPTY_RECORD, False), residence(EMPTY_RECORD, None)
    day = date(2025, 1, 1)

    assert [r.sabo_on(day) for r in (here, elsewhere, unknown)] == [True, True, True]
    assert [r.sabo_cohort_on(day) for r in (here, elsewhere, unknown)] == [True, False, True]
    assert [r.residences[0][3] for r in (here, elsewhere, unknown)] == [
        MAIN_CARE_HERE, MAIN_CARE_ELSEWHERE, MAIN_CARE_NOT_RECORDED]


def test_a_later_fact_without_the_qualifier_keeps_the_one_recorded_and_a_stated_one_replaces_it():
    elsewhere = residence(EMPTY_RECORD, False)
    closed_by_an_older_producer = residence(elsewhere, None, sabo_to="2025-12-31")
    now_here = residence(closed_by_an_older_producer, True, sabo_to="2025-12-31")

    assert closed_by_an_older_producer.residences[0][2:] == (date(2025, 12, 31).toordinal(), MAIN_CARE_ELSEWHERE)
    assert now_here.residences[0][3] == MAIN_CARE_HERE
    assert residence(now_here, True, sabo_to="2025-12-31") is now_here  # a redelivery changes nothing


def test_the_record_codec_keeps_each_residences_qualifier():
    record = residence(residence(EMPTY_RECORD, False), None)
    assert decode_record(encode_record(record)) == record
    assert decode_record(encode_record(record)).sabo_cohort_on(date(2025, 1, 1)) is False


def test_a_record_written_before_the_qualifier_was_kept_reads_every_residence_as_not_recorded():
    coordinating = DOCTOR_1.encode()
    version_2 = b"".join((struct.pack("<BQBBBq", 2, 42, 1, len(coordinating), 4, 1_700_000_000_000_000),
                          coordinating, struct.pack("<QII", 7, 738000, 0), encode_state(EMPTY_RECORD.state)))
    record = decode_record(version_2)

    assert (record.coordinating, record.fingerprint, record.rub) == (DOCTOR_1, 42, 4)
    assert record.residences == ((7, 738000, 0, MAIN_CARE_NOT_RECORDED),)
    assert record.sabo_cohort_on(date.fromordinal(738001)) is True
