"""Retention: past FLK_NOTIFIER_RETENTION_DAYS the notifier forgets who its old rows were about —
resolved gaps lose the patient key, the care state of the dead and emigrated goes, published outbox
rows go — and keeps everything alerting still works on."""
from __future__ import annotations

from datetime import timedelta

from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key

from notifier_harness import T0, flk_assigned, listing_started, risk_assessed, wait_until

RESOLVED, STILL_OPEN, DECEASED = a_patient_key(11), a_patient_key(12), a_patient_key(13)


def _person(key: str, status: str, at) -> dict:
    return {"patient_key": key, "id_kind": "personnummer", "birth_date": "1940-01-01", "region_code": "19",
            "protected_identity": False, "status": status, "updated_at": at.isoformat()}


async def test_past_the_retention_old_rows_forget_the_patient_and_open_gaps_keep_theirs(notifier):
    await notifier.route(UNIT_A)
    runtime = await notifier.start(retention_days=365)
    for key in (RESOLVED, STILL_OPEN, DECEASED):
        await notifier.publish("listing.started.v1", listing_started(key, UNIT_A, T0.date()))
        await notifier.publish("risk.assessed.v1", risk_assessed(key, 5, T0 - timedelta(days=30)))
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 6 FROM notifier.inbox"), what="facts consumed")
    notifier.advance(timedelta(days=15))
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 3 FROM notifier.care_gap"), what="gaps opened")
    await notifier.publish("fast_lakarkontakt.assigned.v1",
                           flk_assigned(RESOLVED, UNIT_A, DOCTOR_1, (T0 + timedelta(days=15)).date()))
    await notifier.publish("person.updated.v1", _person(DECEASED, "deceased", T0 + timedelta(days=16)))
    await wait_until(lambda: notifier.fetchval(
        "SELECT count(*) = 2 FROM notifier.care_gap WHERE resolved_at IS NOT NULL"), what="two gaps resolved")
    await wait_until(lambda: notifier.fetchval(
        "SELECT count(*) = 0 FROM notifier.outbox WHERE published_at IS NULL"), what="outbox published")

    nothing_yet = await runtime.purge_expired()  # within the retention: nothing goes
    assert (nothing_yet.gaps_forgotten, nothing_yet.states_deleted, nothing_yet.outbox_deleted) == (0, 0, 0)

    notifier.advance(timedelta(days=400))
    purged = await runtime.purge_expired()

    assert purged.gaps_forgotten == 2 and purged.states_deleted == 1 and purged.outbox_deleted > 0
    gaps = {r["patient_key"]: r for r in await notifier.fetch("SELECT * FROM notifier.care_gap")}
    assert set(gaps) == {None, STILL_OPEN}, "resolved gaps lost their key, the open one kept it"
    assert gaps[STILL_OPEN]["resolved_at"] is None
    history = await notifier.fetchval("SELECT count(*) FROM notifier.care_gap_history WHERE care_unit_id = $1",
                                      UNIT_A)
    assert history == 3, "the reports still count every gap"
    states = {r["patient_key"] for r in await notifier.fetch("SELECT patient_key FROM notifier.patient_care_state")}
    assert states == {RESOLVED, STILL_OPEN}
    assert await notifier.fetchval("SELECT count(*) FROM notifier.outbox") == 0
    assert notifier.probe.purged_rows.labels("care_state")._value.get() == 1
