"""Which SÄBO residents raise the SÄBO alert: G3's population (seed 001: residents "som där får sin
huvudsakliga hälso- och sjukvård"). A resident recorded as getting their main care elsewhere qualifies only
by RUB (unless the region's profile includes them); a resident whose residence fact does not say qualifies,
as G3 counts them."""
from __future__ import annotations

import pytest

from flk.events.envelope import make_record, read_record
from services.notifier.adapters.inbound import FactMapper
from services.notifier.adapters.state_codec import decode_state, encode_state
from services.notifier.domain.care_gaps import CarePolicy, GapResolution, ResidenceFact
from services.notifier.settings import NotifierSettings
from tests.support.builders import a_patient_key
from tests.unit.notifier.test_notifier_care_gaps import DAY, PNR, T0, Patient, listed, rub

pytestmark = pytest.mark.unit


def residence(main_care: bool | None, sabo_from=T0, residence_id="R1") -> ResidenceFact:
    return ResidenceFact(PNR, sabo_from=sabo_from, residence_id=residence_id, main_care_in_residence=main_care)


def test_a_sabo_resident_who_gets_main_care_there_raises_the_sabo_alert():
    p = Patient()
    p.at(T0, rub(1), listed(), residence(True))
    [opened] = p.at(T0 + 14 * DAY)
    assert opened.sabo is True


def test_a_sabo_resident_whose_main_care_is_not_recorded_raises_the_sabo_alert_as_G3_counts_them():
    p = Patient()
    p.at(T0, rub(1), listed(), residence(None))
    [opened] = p.at(T0 + 14 * DAY)
    assert opened.sabo is True


def test_a_sabo_resident_who_gets_main_care_elsewhere_raises_no_sabo_alert():
    p = Patient()
    p.at(T0, rub(1), listed(), residence(False))
    assert p.at(T0 + 30 * DAY) == []


def test_a_sabo_resident_who_gets_main_care_elsewhere_is_still_alerted_for_high_rub_but_not_as_sabo():
    p = Patient()
    p.at(T0, rub(5), listed(), residence(False))
    [opened] = p.at(T0 + 14 * DAY)
    assert (opened.rub, opened.sabo) == (5, False)


def test_a_region_may_alert_every_sabo_resident_whatever_their_main_care():
    p = Patient(CarePolicy(include_sabo_main_care_elsewhere=True))
    p.at(T0, rub(1), listed(), residence(False))
    [opened] = p.at(T0 + 14 * DAY)
    assert opened.sabo is True
    assert NotifierSettings(include_sabo_main_care_elsewhere=True).care_policy.include_sabo_main_care_elsewhere


def test_main_care_recorded_as_elsewhere_resolves_an_open_sabo_gap():
    p = Patient()
    p.at(T0, rub(1), listed(), residence(None))
    [opened] = p.at(T0 + 14 * DAY)
    [resolved] = p.at(T0 + 20 * DAY, residence(False))
    assert (resolved.gap_id, resolved.resolution) == (opened.gap_id, GapResolution.NO_LONGER_QUALIFIES)


def test_a_later_residence_fact_without_the_qualifier_keeps_the_one_recorded():
    p = Patient()
    p.at(T0, rub(1), listed(), residence(False))
    p.at(T0 + DAY, ResidenceFact(PNR, sabo_from=T0, sabo_to=T0 + 90 * DAY, residence_id="R1"))
    assert p.state.sabo_periods[0].main_care_in_residence is False
    assert p.at(T0 + 30 * DAY) == []


def test_a_state_stored_before_the_qualifier_existed_reads_as_not_recorded():
    p = Patient()
    p.at(T0, listed(), residence(None))
    stored = encode_state(p.state)
    assert "main_care_in_residence" not in stored["sabo_periods"][0]  # what an older notifier stored
    assert decode_state(stored).sabo_periods[0].main_care_in_residence is None
    q = Patient()
    q.at(T0, listed(), residence(False))
    assert decode_state(encode_state(q.state)) == q.state


@pytest.mark.parametrize("wire, fact", [(True, True), (False, False), (None, None)])
def test_the_residence_fact_carries_the_qualifier_and_its_absence(wire, fact):
    data = {"residence_id": "R1", "patient_key": a_patient_key(7), "sabo_from": "2026-01-01", "sabo_to": None,
            "recorded_at": "2026-01-01T08:00:00Z"}
    if wire is not None:
        data["main_care_in_residence"] = wire
    record = make_record("residence.recorded.v1", data, source="urn:test")
    (mapped,) = FactMapper().facts(read_record(record.topic, record.key, record.value, record.headers))
    assert mapped.main_care_in_residence is fact
