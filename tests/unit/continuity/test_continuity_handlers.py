"""How listing events move a patient's coordinating FLK in the continuity record (pure handlers): the
doctor the per-doctor aggregates count the patient under."""
from __future__ import annotations

import pytest

from services.continuity.domain.settings import ContinuitySettings
from services.continuity.service_layer.handlers import HANDLERS, effective_day
from services.continuity.service_layer.record import EMPTY_RECORD
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key

pytestmark = pytest.mark.unit

DOCTOR_2 = "SE2321000016-L002"
KEY = a_patient_key(7)
SETTINGS = ContinuitySettings()


def apply(record, event_type: str, **data):
    from datetime import date

    return HANDLERS[event_type](record, {"patient_key": KEY, "care_unit_id": UNIT_A, **data}, 0, date(2026, 3, 1),
                                SETTINGS)


def two_flks():
    r = apply(EMPTY_RECORD, "listing.started.v1", listing_id="l", started_on="2025-01-01")
    r = apply(r, "fast_lakarkontakt.assigned.v1", list_id="a", list_kind="doctor", practitioner_id=DOCTOR_1,
              coordinating=True, assigned_on="2025-01-02")
    return apply(r, "fast_lakarkontakt.assigned.v1", list_id="b", list_kind="doctor", practitioner_id=DOCTOR_2,
                 coordinating=False, assigned_on="2025-01-03")


def test_a_coordinating_change_moves_the_patient_to_the_new_coordinating_doctor():
    before = two_flks()
    assert before.coordinating == DOCTOR_1
    after = apply(before, "fast_lakarkontakt.coordinating_changed.v1", list_id="b", practitioner_id=DOCTOR_2,
                  previous_list_id="a", changed_on="2025-02-01")
    assert after.coordinating == DOCTOR_2
    assert effective_day("fast_lakarkontakt.coordinating_changed.v1", {"changed_on": "2025-02-01"}) == "2025-02-01"


def test_a_coordinating_change_to_a_doctor_the_record_does_not_hold_changes_nothing():
    before = two_flks()
    same = apply(before, "fast_lakarkontakt.coordinating_changed.v1", list_id="x", practitioner_id="SE2321000016-L999",
                 previous_list_id="a", changed_on="2025-02-01")
    fictive = apply(before, "fast_lakarkontakt.coordinating_changed.v1", list_id="f", practitioner_id=None,
                    previous_list_id="a", changed_on="2025-02-01")
    assert same is before and fictive is before


def test_an_flk_at_another_unit_keeps_the_patient_under_its_doctor_through_a_relisting():
    """Kronoberg (seed 003): the listing service ends the old unit's FLKs with their own events; an FLK
    at another unit is not ended, so a new listing must not drop it (nor its coordination)."""
    unit_b = "SE2321000016-VCB2"
    r = apply(EMPTY_RECORD, "listing.started.v1", listing_id="l", started_on="2025-01-01")
    r = apply(r, "fast_lakarkontakt.assigned.v1", list_id="b", list_kind="doctor", practitioner_id=DOCTOR_2,
              coordinating=True, assigned_on="2025-01-02", care_unit_id=unit_b)

    r = apply(r, "listing.ended.v1", listing_id="l", ended_on="2025-03-01", reason="relisted")
    r = apply(r, "listing.started.v1", listing_id="l2", started_on="2025-03-01", care_unit_id=unit_b)

    assert (r.state.listing_unit_id, r.state.fast_lakarkontakt, r.coordinating) == (unit_b, (DOCTOR_2,), DOCTOR_2)


def test_the_old_units_flk_leaves_the_record_by_its_own_end_event_when_the_patient_relists():
    r = apply(two_flks(), "fast_lakarkontakt.ended.v1", list_id="a", list_kind="doctor", practitioner_id=DOCTOR_1,
              coordinating=True, ended_on="2025-03-01", reason="relisted")
    r = apply(r, "fast_lakarkontakt.ended.v1", list_id="b", list_kind="doctor", practitioner_id=DOCTOR_2,
              coordinating=False, ended_on="2025-03-01", reason="relisted")
    r = apply(r, "listing.started.v1", listing_id="l2", started_on="2025-03-01", care_unit_id="SE2321000016-VCB2")
    assert (r.state.fast_lakarkontakt, r.coordinating) == ((), None)
