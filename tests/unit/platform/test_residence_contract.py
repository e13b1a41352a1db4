"""`residence.recorded.v1` grew an optional field, `main_care_in_residence` (the G3/G4 qualifier: the
resident "får sin huvudsakliga hälso- och sjukvård i boendet", seed 001). The change is additive: an event
from a producer that does not send it is still valid, and every consumer handles it as *not recorded*
(never as false)."""
from __future__ import annotations

from datetime import date

import pytest

from flk.events.contracts import ContractViolation, contracts
from flk.events.envelope import make_record, read_record
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.service_layer.handlers import HANDLERS
from services.continuity.service_layer.record import EMPTY_RECORD, MAIN_CARE_NOT_RECORDED
from services.listing.adapters.reference import main_care_in_residence
from services.notifier.adapters.inbound import FactMapper
from tests.support.builders import a_patient_key

pytestmark = pytest.mark.unit

V1_WITHOUT_THE_FIELD = {"residence_id": "R1", "patient_key": a_patient_key(3), "sabo_from": "2026-01-01",
                        "sabo_to": None, "municipality_code": "1980", "recorded_at": "2026-01-01T08:00:00Z"}


def test_a_residence_event_without_the_qualifier_is_still_valid_and_handled_as_not_recorded():
    contracts().validate("residence.recorded.v1", V1_WITHOUT_THE_FIELD)
    record = make_record("residence.recorded.v1", V1_WITHOUT_THE_FIELD, source="urn:test")
    envelope = read_record(record.topic, record.key, record.value, record.headers)

    assert main_care_in_residence(envelope.data) is None  # listing: NULL in listing.sabo_residence
    (fact,) = FactMapper().facts(envelope)  # notifier
    assert fact.main_care_in_residence is None
    continuity = HANDLERS["residence.recorded.v1"](EMPTY_RECORD, envelope.data, 0, date(2026, 3, 1),
                                                   ContinuitySettings())
    assert continuity.residences[0][3] == MAIN_CARE_NOT_RECORDED
    assert continuity.sabo_cohort_on(date(2026, 2, 1)) is True


@pytest.mark.parametrize("value", [True, False])
def test_a_residence_event_may_say_whether_the_resident_gets_their_main_care_there(value):
    contracts().validate("residence.recorded.v1", {**V1_WITHOUT_THE_FIELD, "main_care_in_residence": value})
    assert main_care_in_residence({**V1_WITHOUT_THE_FIELD, "main_care_in_residence": value}) is value


@pytest.mark.parametrize("value", ["ja", 1, None])
def test_the_qualifier_is_a_boolean_when_sent(value):
    with pytest.raises(ContractViolation):
        contracts().validate("residence.recorded.v1", {**V1_WITHOUT_THE_FIELD, "main_care_in_residence": value})


def test_the_schema_describes_the_qualifier_in_the_goals_swedish_words():
    field = contracts().schema("residence.recorded.v1")["properties"]["main_care_in_residence"]
    assert "får sin huvudsakliga hälso- och sjukvård i boendet" in field["description"]
    assert "main_care_in_residence" not in contracts().schema("residence.recorded.v1")["required"]
