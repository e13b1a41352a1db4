"""The fast-vårdkontakt care gap end to end (issue 13, item 6; seed 004, Kalmar): events on the real broker,
PostgreSQL, a real SMTP server and the local Teams stand-in. The region's profile comes from the listing
service's own setting (FLK_LISTING_PROFILE): the `flk` command derives the notifier's bands from it
(tools/regional_profile.py), as here."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from services.notifier.adapters.state_codec import decode_state
from tests.conftest import consume_all
from tools.regional_profile import fast_vardkontakt_rub_bands
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key

from notifier_harness import T0, flk_assigned, listing_started, risk_assessed, wait_until

pytestmark = pytest.mark.integration


def _bands_of(listing_profile: str) -> frozenset[int]:
    return fast_vardkontakt_rub_bands(listing_profile, T0.date())


def fvk_appointed(patient_key: str, unit_id: str, appointed_on) -> dict:
    return {
        "appointment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fvk|{patient_key}")),
        "patient_key": patient_key, "care_unit_id": unit_id, "practitioner_id": "SE2321000016-SSK1",
        "profession": "sjukskoterska", "appointed_on": appointed_on.isoformat(),
    }


async def _listed_rub5_with_flk(notifier, patient: str) -> None:
    await notifier.publish("listing.started.v1", listing_started(patient, UNIT_A, T0.date()))
    await notifier.publish("risk.assessed.v1", risk_assessed(patient, 5, T0 - timedelta(days=30)))
    await notifier.publish("fast_lakarkontakt.assigned.v1", flk_assigned(patient, UNIT_A, DOCTOR_1, T0.date()))


async def test_in_kalmar_a_rub_5_patient_without_a_fast_vardkontakt_gets_a_gap_an_email_and_a_teams_card_saying_so(
        notifier, smtp_sink, teams_sink, kafka_bootstrap, topic_prefix):
    patient = a_patient_key(61)
    await notifier.route(UNIT_A)
    await notifier.start(fast_vardkontakt_rub_bands=_bands_of("kalmar"))
    await _listed_rub5_with_flk(notifier, patient)
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 3 FROM notifier.inbox"), what="events consumed")

    notifier.advance(timedelta(days=15))
    await wait_until(lambda: len(smtp_sink.received) == 1 and len(teams_sink.accepted) == 1, what="alert delivered")
    [gap] = await notifier.fetch("SELECT * FROM notifier.care_gap")
    assert (gap["kind"], gap["cause"], gap["rub"]) == ("fast_vardkontakt", "no_fast_vardkontakt", 5)
    assert await notifier.fetchval("SELECT kind FROM notifier.open_care_gap_for_alerting") == "fast_vardkontakt"

    mail = smtp_sink.received[0]
    assert "saknar fast vårdkontakt" in mail.message["Subject"]
    assert "Har ingen fast vårdkontakt" in mail.text and patient not in mail.text
    card = json.dumps(teams_sink.accepted[0].body, ensure_ascii=False)
    assert "saknar fast vårdkontakt" in card and patient not in card

    # the verksamhetschef appoints a fast vårdkontakt: the gap resolves and care_gap.resolved says which kind
    await notifier.publish("fast_vardkontakt.appointed.v1", fvk_appointed(patient, UNIT_A, (T0 + timedelta(days=15)).date()))
    await wait_until(lambda: notifier.fetchval("SELECT resolved_at IS NOT NULL FROM notifier.care_gap"),
                     what="gap resolved")
    assert await notifier.fetchval("SELECT resolution FROM notifier.care_gap") == "fast_vardkontakt_appointed"
    published = await consume_all(kafka_bootstrap, topic_prefix + "caregaps.events.v1", 2)
    assert [(json.loads(r.value)["kind"]) for r in published] == ["fast_vardkontakt", "fast_vardkontakt"]
    state = decode_state(json.loads(await notifier.fetchval(
        "SELECT state FROM notifier.patient_care_state WHERE patient_key = $1", patient)))
    assert state.open_fvk_gap is None and len(state.fvk_appointments) == 1


async def test_no_fast_vardkontakt_gap_where_the_listing_profile_does_not_require_one(notifier):
    patient = a_patient_key(62)
    await notifier.start(fast_vardkontakt_rub_bands=_bands_of("vastmanland"))
    await _listed_rub5_with_flk(notifier, patient)
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 3 FROM notifier.inbox"), what="events consumed")
    notifier.advance(timedelta(days=15))
    await wait_until(lambda: notifier.fetchval(
        "SELECT next_wakeup IS NULL FROM notifier.patient_care_state WHERE patient_key = $1", patient),
        what="grace period ticked")
    assert await notifier.fetchval("SELECT count(*) FROM notifier.care_gap") == 0


async def test_a_patient_lacking_both_has_one_open_gap_of_each_kind_at_the_unit(notifier):
    patient = a_patient_key(63)
    await notifier.start(fast_vardkontakt_rub_bands=_bands_of("kalmar"), grace_days=0)
    await notifier.publish("listing.started.v1", listing_started(patient, UNIT_A, T0.date()))
    await notifier.publish("risk.assessed.v1", risk_assessed(patient, 4, T0 - timedelta(days=30)))
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 2 FROM notifier.care_gap"), what="two gaps")
    rows = await notifier.fetch("SELECT kind, care_unit_id FROM notifier.care_gap WHERE resolved_at IS NULL "
                                "ORDER BY kind")
    assert [(r["kind"], r["care_unit_id"]) for r in rows] == [("fast_lakarkontakt", UNIT_A), ("fast_vardkontakt", UNIT_A)]
    by_unit = await notifier.fetch("SELECT open_gaps, open_gaps_fast_lakarkontakt, open_gaps_fast_vardkontakt "
                                   "FROM notifier.open_care_gaps_by_unit")
    assert [tuple(r) for r in by_unit] == [(2, 1, 1)]
