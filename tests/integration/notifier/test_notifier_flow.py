"""Care gaps and alerts end to end: events on the real broker, PostgreSQL, a real SMTP server
(aiosmtpd) and a local HTTP server standing in for the Teams Workflows webhook."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta


from flk.events.envelope import derived_id
from services.notifier.domain.messages import ensure_no_personal_identity_number
from tests.conftest import consume_all
from tests.support.builders import DOCTOR_1, UNIT_A, a_patient_key

from notifier_harness import T0, flk_assigned, listing_started, risk_assessed, wait_until

PATIENT = a_patient_key(1)


async def _a_listed_rub5_patient(notifier, patient_key: str = PATIENT, unit_id: str = UNIT_A) -> None:
    await notifier.publish("listing.started.v1", listing_started(patient_key, unit_id, T0.date()))
    await notifier.publish("risk.assessed.v1", risk_assessed(patient_key, 5, T0 - timedelta(days=30)))


async def _open_gaps(notifier) -> int:
    return await notifier.fetchval("SELECT count(*) FROM notifier.care_gap WHERE resolved_at IS NULL")


async def _attempts(notifier, channel: str) -> list[dict]:
    rows = await notifier.fetch(
        "SELECT attempt, outcome, http_status, smtp_code, smtp_reply_class, error_type, retry_after, started_at "
        "FROM notifier.delivery_attempt WHERE channel = $1 ORDER BY attempt", channel)
    return [dict(r) for r in rows]


def _headers(record) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def test_listing_events_open_a_gap_after_the_grace_period_and_the_unit_gets_one_email_and_one_teams_card(
        notifier, smtp_sink, teams_sink, kafka_bootstrap, topic_prefix):
    await notifier.route(UNIT_A)
    await notifier.start()
    await _a_listed_rub5_patient(notifier)

    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 2 FROM notifier.inbox"), what="events consumed")
    assert await _open_gaps(notifier) == 0, "no gap inside the 14-day grace period"
    wakeup = await notifier.fetchval("SELECT next_wakeup FROM notifier.patient_care_state")
    assert wakeup is not None, "the grace period end is stored for the ticker"

    notifier.advance(timedelta(days=15))
    await wait_until(lambda: len(smtp_sink.received) == 1 and len(teams_sink.accepted) == 1, what="alert delivered")

    gap = (await notifier.fetch("SELECT * FROM notifier.care_gap"))[0]
    assert (gap["patient_key"], gap["care_unit_id"], gap["cause"], gap["rub"]) == (PATIENT, UNIT_A, "never_assigned", 5)

    mail = smtp_sink.received[0]
    assert mail.rcpt_tos == ["vardcentral-a@example.se"]
    assert mail.message["Subject"].startswith("Ny vårdlucka: 1 patient med stort vårdbehov")
    assert f"https://flk.example.se/worklist/units/{UNIT_A}/worklist" in mail.text

    card = teams_sink.accepted[0].body
    assert card["type"] == "message"
    (attachment,) = card["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    content = attachment["content"]
    assert (content["type"], content["version"]) == ("AdaptiveCard", "1.4")
    assert all(block["type"] in ("TextBlock", "FactSet") for block in content["body"])
    assert content["actions"] == [{"type": "Action.OpenUrl", "title": "Öppna arbetslistan",
                                   "url": f"https://flk.example.se/worklist/units/{UNIT_A}/worklist"}]

    opened = await consume_all(kafka_bootstrap, topic_prefix + "caregaps.events.v1", 1)
    assert _headers(opened[0])["ce_type"] == "se.flk.care_gap.opened.v1"
    assert _headers(opened[0])["ce_id"] == derived_id("care_gap.opened.v1", gap["gap_id"])
    assert opened[0].key.decode() == PATIENT
    delivered = await consume_all(kafka_bootstrap, topic_prefix + "notifier.alerts.v1", 2)
    assert sorted(json.loads(r.value)["channel"] for r in delivered) == ["email", "teams"]
    assert {json.loads(r.value)["kind"] for r in delivered} == {"immediate"}

    assert [(a["attempt"], a["outcome"], a["smtp_reply_class"]) for a in await _attempts(notifier, "email")] == [
        (1, "delivered", "2xx")]
    assert [(a["attempt"], a["outcome"], a["http_status"]) for a in await _attempts(notifier, "teams")] == [
        (1, "delivered", 202)]


async def test_redelivered_events_open_no_second_gap_and_send_no_second_alert(notifier, smtp_sink, teams_sink):
    await notifier.route(UNIT_A)
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: len(smtp_sink.received) == 1 and len(teams_sink.accepted) == 1, what="first alert")

    registry = notifier.probe.registry

    def duplicates() -> float:
        return sum(registry.get_sample_value("flk_notifier_events_duplicate_total", {"event_type": t}) or 0
                   for t in ("listing.started.v1", "risk.assessed.v1"))

    # the producer publishes the same events again (same ids) ...
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: duplicates() == 2, what="the republished events dropped by the inbox")
    # ... and a restarted consumer with a fresh group re-reads all four messages from the start
    await notifier.stop()
    await notifier.start(grace_days=0, consumer_group="notifier-restarted")
    await wait_until(lambda: duplicates() == 6, what="every redelivery dropped by the inbox")
    notifier.runtime.poke()
    await wait_until(lambda: notifier.fetchval("SELECT count(*) = 0 FROM notifier.outbox WHERE published_at IS NULL"))

    assert await notifier.fetchval("SELECT count(*) FROM notifier.care_gap") == 1
    assert await notifier.fetchval("SELECT count(*) FROM notifier.alert") == 1
    assert await notifier.fetchval("SELECT count(*) FROM notifier.outbox WHERE event_type = 'care_gap.opened.v1'") == 1
    assert len(smtp_sink.received) == 1
    assert len(teams_sink.requests) == 1


async def test_smtp_down_is_retried_later_and_the_email_is_delivered_once(notifier, smtp_down):
    await notifier.route(UNIT_A, teams=False)
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)

    await wait_until(lambda: _attempts(notifier, "email"), what="a first, failed attempt")
    smtp_down.start()
    await wait_until(lambda: smtp_down.received, what="the email after the server came up")
    await wait_until(lambda: notifier.fetchval(
        "SELECT status = 'delivered' FROM notifier.alert_delivery WHERE channel = 'email'"))

    attempts = await _attempts(notifier, "email")
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert len(attempts) >= 2
    assert all(a["outcome"] == "retry" and a["error_type"] == "SMTPConnectError" for a in attempts[:-1])
    assert (attempts[-1]["outcome"], attempts[-1]["smtp_reply_class"]) == ("delivered", "2xx")
    assert len(smtp_down.received) == 1


async def test_teams_answering_429_with_retry_after_is_waited_for_and_the_card_delivered_once(
        notifier, teams_sink, kafka_bootstrap, topic_prefix):
    teams_sink.script = [(429, {"Retry-After": "1"})]
    await notifier.route(UNIT_A, email_to=())
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)

    await wait_until(lambda: teams_sink.accepted, what="the card after the 429")
    first, second = teams_sink.requests
    assert (first.status, second.status) == (429, 202)
    assert second.at - first.at >= 0.95, "Retry-After: 1 was honoured"
    assert first.body == second.body
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]

    await wait_until(lambda: notifier.fetchval(
        "SELECT status = 'delivered' FROM notifier.alert_delivery WHERE channel = 'teams'"))
    attempts = await _attempts(notifier, "teams")
    assert [(a["attempt"], a["outcome"], a["http_status"], a["retry_after"]) for a in attempts] == [
        (1, "retry", 429, "1"), (2, "delivered", 202, None)]
    delivered = await consume_all(kafka_bootstrap, topic_prefix + "notifier.alerts.v1", 1)
    assert json.loads(delivered[0].value)["attempts"] == 2


async def test_no_personnummer_or_patient_key_in_any_delivered_email_or_card(notifier, smtp_sink, teams_sink):
    serials = (1, 2, 3)
    keys = [a_patient_key(s) for s in serials]
    await notifier.route(UNIT_A)
    await notifier.start(grace_days=0)
    for key in keys:
        await _a_listed_rub5_patient(notifier, key)
    await wait_until(lambda: notifier.fetchval(
        "SELECT coalesce(sum(gap_count), 0) = 3 FROM notifier.alert"), what="all three gaps alerted")
    await wait_until(lambda: notifier.fetchval(
        "SELECT count(*) = 0 FROM notifier.alert_delivery WHERE status <> 'delivered'"))

    gap_ids = [str(r["gap_id"]) for r in await notifier.fetch("SELECT gap_id FROM notifier.care_gap")]
    assert len(gap_ids) == 3
    texts = [m.raw.decode("utf-8", "replace") for m in smtp_sink.received] + [m.text for m in smtp_sink.received]
    texts += [json.dumps(r.body, ensure_ascii=False) for r in teams_sink.requests]
    texts += [json.dumps(r.headers) for r in teams_sink.requests]
    assert smtp_sink.received and teams_sink.requests
    person_ids = [f"19500101{s:04d}" for s in serials]
    forbidden = keys + gap_ids + person_ids + [p[2:] for p in person_ids] + [f"{p[2:8]}-{p[8:]}" for p in person_ids]
    for text in texts:
        for value in forbidden:
            assert value not in text
        assert not re.search(r"pk1_[a-z2-7]{26}", text)
        ensure_no_personal_identity_number(text)
    metrics = notifier.probe.registry
    from prometheus_client import generate_latest

    exposition = generate_latest(metrics).decode()
    assert "pk1_" not in exposition and UNIT_A in exposition


async def test_an_assigned_fast_lakarkontakt_resolves_the_gap_and_care_gap_resolved_is_published(
        notifier, smtp_sink, kafka_bootstrap, topic_prefix):
    await notifier.route(UNIT_A, teams=False)
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: _open_gaps(notifier), what="gap opened")

    await notifier.publish("fast_lakarkontakt.assigned.v1", flk_assigned(PATIENT, UNIT_A, DOCTOR_1, T0.date()))
    await wait_until(lambda: notifier.fetchval(
        "SELECT resolution FROM notifier.care_gap WHERE resolved_at IS NOT NULL"), what="gap resolved")

    records = await consume_all(kafka_bootstrap, topic_prefix + "caregaps.events.v1", 2)
    assert [_headers(r)["ce_type"] for r in records] == ["se.flk.care_gap.opened.v1", "se.flk.care_gap.resolved.v1"]
    resolved = json.loads(records[1].value)
    assert resolved["resolution"] == "fast_lakarkontakt_assigned"
    assert resolved["gap_id"] == json.loads(records[0].value)["gap_id"]


async def test_quiet_hours_hold_an_immediate_alert_until_they_end(notifier, smtp_sink):
    notifier.clock.set(T0.replace(hour=23))
    await notifier.route(UNIT_A, teams=False, quiet_hours="22:00-07:00")
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: _open_gaps(notifier), what="gap opened")
    notifier.runtime.poke()
    await asyncio.sleep(0.5)
    assert smtp_sink.received == []

    notifier.advance(timedelta(hours=8, minutes=5))  # 07:05 local
    await wait_until(lambda: smtp_sink.received, what="the alert after the quiet hours")
    assert smtp_sink.received[0].message["Subject"].startswith("Ny vårdlucka")


async def test_daily_digest_mode_sends_one_digest_at_the_digest_hour(notifier, smtp_sink):
    notifier.clock.set(T0.replace(hour=6))
    await notifier.route(UNIT_A, teams=False, mode="daily_digest", digest_hour=7)
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: _open_gaps(notifier), what="gap opened")
    notifier.runtime.poke()
    await asyncio.sleep(0.5)
    assert smtp_sink.received == []

    notifier.advance(timedelta(hours=1, minutes=30))
    await wait_until(lambda: smtp_sink.received, what="the digest")
    notifier.runtime.poke()
    await asyncio.sleep(0.5)
    (digest,) = smtp_sink.received
    assert digest.message["Subject"] == (
        f"Daglig sammanställning {T0.date().isoformat()}: 1 patient saknar fast läkarkontakt – Vårdcentralen Centrum")


async def test_a_unit_switched_from_digest_to_immediate_gets_its_alert_although_its_gaps_did_not_change(
        notifier, smtp_sink):
    """The planner skips a unit whose routing and open gaps are those it last planned (before the next
    planning time): a changed routing is a change, and the waiting gap is alerted at the next sweep."""
    notifier.clock.set(T0.replace(hour=6))
    await notifier.route(UNIT_A, teams=False, mode="daily_digest", digest_hour=7)  # the digest: in an hour
    await notifier.start(grace_days=0)
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: _open_gaps(notifier), what="gap opened")
    for _ in range(2):  # planned, then skipped: nothing changed
        assert (await notifier.runtime.planner.plan_unit(UNIT_A))[0] == []
    assert smtp_sink.received == []

    await notifier.route(UNIT_A, teams=False, mode="immediate")
    notifier.runtime.poke()
    await wait_until(lambda: smtp_sink.received, what="the immediate alert after the routing changed")
    assert smtp_sink.received[0].message["Subject"].startswith("Ny vårdlucka")
    assert (await notifier.runtime.planner.plan_unit(UNIT_A))[0] == [], "planned once"


async def test_each_gap_is_alerted_once_by_a_planner_that_planned_the_unit_before_and_by_another_replicas(
        notifier, smtp_sink):
    """A planner remembers which of a unit's dedup ids are planned (they are never deleted) and asks the
    database about the others only: the other replica's plans are found there, its own are not repeated."""
    from services.notifier.service_layer.alerting import AlertPlanner

    await notifier.route(UNIT_A, teams=False)
    await notifier.start(grace_days=0)
    own = notifier.runtime.planner
    other = AlertPlanner(own.pool, own.clock)  # a second replica's planner, on the same database
    await _a_listed_rub5_patient(notifier)
    await wait_until(lambda: len(smtp_sink.received) == 1, what="the first gap's alert")
    assert (await other.plan_unit(UNIT_A))[0] == [], "the other replica plans the first gap again"

    await _a_listed_rub5_patient(notifier, a_patient_key(2))
    await wait_until(lambda: len(smtp_sink.received) == 2, what="the second gap's alert")
    notifier.advance(timedelta(minutes=5))  # past any next planning time
    assert (await other.plan_unit(UNIT_A))[0] == []
    assert (await own.plan_unit(UNIT_A))[0] == []
    await asyncio.sleep(0.5)
    assert len(smtp_sink.received) == 2
