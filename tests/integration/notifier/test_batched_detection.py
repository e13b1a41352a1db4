"""Batched care-gap detection: one transaction per consumed chunk, with the per-message
guarantees (inbox dedup, per-patient order, a poison event dead-lettered alone)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from flk.events import dlq
from flk.events.envelope import make_record, read_record
from flk.events.registry import registry
from services.notifier.adapters.inbound import FactMapper
from services.notifier.service_layer.detection import CareGapDetection
from tests.conftest import consume_all
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key

from notifier_harness import T0, flk_assigned, listing_started, risk_assessed, wait_until

pytestmark = pytest.mark.integration


def _envelope(event_type: str, data: dict, event_id: str | None = None):
    record = make_record(event_type, data, source="urn:test", event_id=event_id)
    return read_record(registry().topic_for(event_type).name, record.key, record.value, record.headers)


def _detection(notifier) -> CareGapDetection:
    settings = notifier.settings.model_copy(update={"grace_days": 0})
    return CareGapDetection(notifier.pool, notifier.clock, settings.care_policy, FactMapper(settings.timezone),
                            notifier.probe)


def _duplicates(notifier, event_type: str) -> float:
    return notifier.probe.registry.get_sample_value("flk_notifier_events_duplicate_total",
                                                    {"event_type": event_type}) or 0


async def test_a_batch_with_a_duplicated_event_id_opens_one_gap_and_writes_one_outbox_row(notifier):
    patient = a_patient_key(21)
    listed = _envelope("listing.started.v1", listing_started(patient, UNIT_A, T0.date()))
    rub5 = _envelope("risk.assessed.v1", risk_assessed(patient, 5, T0 - timedelta(days=30)))
    detection = _detection(notifier)

    await detection.handle_batch([listed, rub5, rub5, listed])
    await detection.handle_batch([rub5])  # redelivered in a later batch: stopped by the inbox

    assert await notifier.fetchval("SELECT count(*) FROM notifier.care_gap WHERE patient_key = $1", patient) == 1
    assert await notifier.fetchval(
        "SELECT count(*) FROM notifier.outbox WHERE event_type = 'care_gap.opened.v1'") == 1
    assert await notifier.fetchval("SELECT count(*) FROM notifier.inbox") == 2
    assert _duplicates(notifier, "risk.assessed.v1") == 2
    assert _duplicates(notifier, "listing.started.v1") == 1


async def test_two_events_of_one_patient_in_one_batch_are_applied_in_arrival_order(notifier):
    patient, other = a_patient_key(22), a_patient_key(23)
    detection = _detection(notifier)

    await detection.handle_batch([
        _envelope("listing.started.v1", listing_started(patient, UNIT_A, T0.date())),
        _envelope("risk.assessed.v1", risk_assessed(other, 5, T0 - timedelta(days=30))),
        _envelope("risk.assessed.v1", risk_assessed(patient, 5, T0 - timedelta(days=30))),  # opens the gap
        _envelope("fast_lakarkontakt.assigned.v1", flk_assigned(patient, UNIT_A, DOCTOR_1, T0.date())),  # resolves it
    ])

    gaps = await notifier.fetch("SELECT patient_key, resolution FROM notifier.care_gap")
    assert [(g["patient_key"], g["resolution"]) for g in gaps] == [(patient, "fast_lakarkontakt_assigned")]
    outbox = await notifier.fetch("SELECT event_type FROM notifier.outbox ORDER BY id")
    assert [r["event_type"] for r in outbox] == ["care_gap.opened.v1", "care_gap.resolved.v1"]
    assert await notifier.fetchval("SELECT count(*) FROM notifier.patient_care_state") == 2

    # the reverse order (FLK first, then RUB 5) leaves no gap: the FLK already covers the patient
    late = a_patient_key(24)
    await detection.handle_batch([
        _envelope("listing.started.v1", listing_started(late, UNIT_A, T0.date())),
        _envelope("fast_lakarkontakt.assigned.v1", flk_assigned(late, UNIT_A, DOCTOR_1, T0.date())),
        _envelope("risk.assessed.v1", risk_assessed(late, 5, T0 - timedelta(days=30))),
    ])
    assert await notifier.fetchval("SELECT count(*) FROM notifier.care_gap WHERE patient_key = $1", late) == 0


async def test_a_poison_event_in_a_consumed_batch_is_dead_lettered_alone_and_the_others_are_committed(
        notifier, kafka_bootstrap, topic_prefix, caplog):
    good = [a_patient_key(30 + i) for i in range(3)]
    poisoned = a_patient_key(39)
    # inconsistent data that makes one event fail: an open gap row the patient's state knows nothing
    # of, so opening the patient's gap violates the one-open-gap-per-patient-and-unit index
    await notifier.pool.execute(
        "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
        "VALUES (gen_random_uuid(), $1, $2, 'never_assigned', 5, false, $3)", poisoned, UNIT_A, T0)
    for patient in good:
        await notifier.publish("listing.started.v1", listing_started(patient, UNIT_A, T0.date()))
    # the poisoned patient's two events are on two topics: whichever is applied second opens the gap
    poison_ids = {await notifier.publish("listing.started.v1", listing_started(poisoned, UNIT_A, T0.date())),
                  await notifier.publish("risk.assessed.v1", risk_assessed(poisoned, 5, T0 - timedelta(days=30)))}
    for patient in good:
        await notifier.publish("risk.assessed.v1", risk_assessed(patient, 5, T0 - timedelta(days=30)))

    with caplog.at_level(logging.WARNING, logger="flk.events.consumer"):
        await notifier.start(grace_days=0)
        await wait_until(lambda: notifier.fetchval("SELECT count(*) = 7 FROM notifier.inbox"), timeout_s=40,
                         what="every event but the poison one handled")
    letters = []
    for event_type in ("listing.started.v1", "risk.assessed.v1"):
        dlq_topic = topic_prefix + registry().topic_for(event_type).name + ".dlq"
        letters += await consume_all(kafka_bootstrap, dlq_topic, 1, timeout_s=5)

    assert len(letters) == 1
    headers = dict(letters[0].headers)
    assert headers["ce_id"].decode() in poison_ids
    assert headers[dlq.REASON] == b"handler failed 5 times: UniqueViolationError"
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 4 FROM notifier.care_gap"), what="good events")
    rows = await notifier.fetch("SELECT patient_key FROM notifier.care_gap WHERE patient_key <> $1", poisoned)
    assert {r["patient_key"] for r in rows} == set(good), "the other patients' gaps are committed"
    assert await notifier.fetchval("SELECT count(*) FROM notifier.inbox") == 7, "every event but the poison one"
    assert await notifier.fetchval("SELECT count(*) FROM notifier.inbox WHERE event_id = $1",
                                   headers["ce_id"].decode()) == 0
    assert any("handling its messages one by one" in r.getMessage() for r in caplog.records), \
        "the batch failed as a whole first and was then split"


async def test_a_batch_of_states_is_saved_as_saving_each_patient_alone_would_save_it(notifier):
    """`save_states` (one upsert over the batch) writes the rows `save_state` writes one by one: new
    patients inserted, a stored one replaced with its version counted up, the wake-up times kept."""
    from dataclasses import replace as changed

    from services.notifier.adapters import care_store
    from services.notifier.domain.care_gaps.state import initial_state

    now = T0
    keys = [a_patient_key(9100 + i) for i in range(4)]
    stored, new = keys[:2], keys[2:]

    async def rows(conn, which):  # (the state with its own key masked: the two sets' keys differ)
        return {r["patient_key"]: (r["state"].replace(r["patient_key"], "K"), r["next_wakeup"], r["version"])
                for r in await conn.fetch(
            "SELECT patient_key, state::text AS state, next_wakeup, version FROM notifier.patient_care_state "
            "WHERE patient_key = ANY($1::text[])", which)}

    async with notifier.pool.acquire() as conn:
        for key in stored:  # saved once before
            await care_store.save_state(conn, initial_state(key), None, now)
        later = now + timedelta(hours=1)
        states = [(changed(initial_state(k), closed_listing_ids=frozenset({"l-1"})), later + timedelta(days=i))
                  for i, k in enumerate(keys)]
        await care_store.save_states(conn, states, later)
        batch = await rows(conn, keys)

        one_by_one = [a_patient_key(9200 + i) for i in range(4)]
        for key in one_by_one[:2]:
            await care_store.save_state(conn, initial_state(key), None, now)
        for (state, wake), key in zip(states, one_by_one):
            await care_store.save_state(conn, changed(state, patient_key=key), wake, later)
        alone = await rows(conn, one_by_one)

    assert [batch[k] for k in keys] == [alone[k] for k in one_by_one]
    assert [batch[k][2] for k in keys] == [2, 2, 1, 1]  # the stored ones replaced, the new ones inserted
    assert [batch[k][1] for k in keys] == [later + timedelta(days=i) for i in range(4)]
