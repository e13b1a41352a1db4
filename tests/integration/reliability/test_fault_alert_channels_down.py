"""SMTP server and Teams endpoint both down while the notifier (`flk notifier run`) has alerts to send:
the deliveries are retried, and each alert reaches each channel exactly once when they return.

Extends tests/integration/notifier (SMTP down alone, in-process; Teams answering 429) to both
channels down at once — nothing listening on either port — with the notifier as its own process.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from flk.events.envelope import make_record
from flk.events.producer import new_producer, publish_many
from services.notifier.adapters.secrets import env_var_for
from services.notifier.service_layer.routing import build_routing, set_routing
from tests.integration.notifier.notifier_harness import SmtpSink, TeamsSink, listing_started, risk_assessed
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key

from reliability_deployment import ready, running_deployment
from reliability_support import free_port, wait_until

TEAMS_REF = "teams-down-test"


async def metric_values(base_url: str) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{base_url}/metrics")).text
    return {f'{s.name}{{channel="{s.labels["channel"]}"}}': s.value
            for family in text_string_to_metric_families(text) for s in family.samples if "channel" in s.labels}
PATIENTS = {UNIT_A: [a_patient_key(9100 + i) for i in range(3)], UNIT_B: [a_patient_key(9200 + i) for i in range(2)]}


@pytest.mark.slow
async def test_alerts_are_retried_while_smtp_and_teams_are_down_and_delivered_once_each_when_they_return(
        infra, tmp_path):
    smtp, teams = SmtpSink(free_port()), TeamsSink(free_port())  # neither listening yet
    env = {"notifier": {"FLK_NOTIFIER_SMTP_PORT": str(smtp.port), env_var_for(TEAMS_REF): teams.url,
                        "FLK_NOTIFIER_METRICS_REFRESH_S": "1"}}
    try:
        async with running_deployment(infra, tmp_path, services=("notifier",), env=env) as d:
            await ready(d)
            pool = await asyncpg.create_pool(d.dsn, min_size=1, max_size=2)
            try:
                for unit in PATIENTS:
                    await set_routing(pool, build_routing(unit, f"VC {unit[-4:]}", email_to=[f"{unit[-4:]}@example.se"],
                                                          teams_webhook_secret_ref=TEAMS_REF, mode="immediate",
                                                          quiet_hours=None), "test", datetime.now(timezone.utc))
                started_on = (datetime.now(timezone.utc) - timedelta(days=40)).date()
                records = []
                for unit, keys in PATIENTS.items():
                    for key in keys:
                        records.append(make_record("listing.started.v1", listing_started(key, unit, started_on),
                                                   source="urn:test"))
                        records.append(make_record("risk.assessed.v1", risk_assessed(
                            key, 5, datetime.now(timezone.utc) - timedelta(days=35)), source="urn:test"))
                producer = new_producer(d.bootstrap, client_id="alert-test")
                await producer.start()
                try:
                    await publish_many(producer, records, d.prefix)
                finally:
                    await producer.stop()

                async def failed_attempts(channel: str) -> int:
                    return await pool.fetchval("SELECT count(*) FROM notifier.delivery_attempt "
                                               "WHERE channel = $1 AND outcome <> 'delivered'", channel)

                async def both_failing() -> bool:
                    return await failed_attempts("email") >= 2 and await failed_attempts("teams") >= 2
                await wait_until(both_failing, timeout_s=60, what="failed attempts on both channels")
                failures = {c: await failed_attempts(c) for c in ("email", "teams")}

                async def pending_gauges(at_least: float) -> bool:  # the AlertDeliveryPendingTooLong alert's input
                    metrics = await metric_values(d.url("notifier"))
                    return all(metrics.get(f'flk_notifier_deliveries_pending{{channel="{c}"}}', 0) >= 1 and
                               metrics.get(f'flk_notifier_oldest_pending_delivery_age_seconds{{channel="{c}"}}', 0)
                               >= at_least for c in ("email", "teams"))
                await wait_until(lambda: pending_gauges(1.0), timeout_s=30, what="pending deliveries in /metrics")

                smtp.start()
                await teams.start()

                async def all_delivered() -> bool:
                    return await pool.fetchval(
                        "SELECT count(*) >= 2 AND count(*) * 2 = (SELECT count(*) FROM notifier.alert_delivery "
                        "WHERE status = 'delivered') FROM notifier.alert")
                await wait_until(all_delivered, timeout_s=60, what="every alert delivered on both channels")

                async def none_pending() -> bool:
                    metrics = await metric_values(d.url("notifier"))
                    return all(metrics.get(f'flk_notifier_{name}{{channel="{c}"}}') == 0 for c in ("email", "teams")
                               for name in ("deliveries_pending", "oldest_pending_delivery_age_seconds"))
                await wait_until(none_pending, timeout_s=30, what="no pending deliveries in /metrics")
                await asyncio.sleep(3)  # time for a wrong second delivery to show up
                alerts = await pool.fetchval("SELECT count(*) FROM notifier.alert")
                statuses = await pool.fetch("SELECT channel, status, attempts FROM notifier.alert_delivery")
            finally:
                await pool.close()
            assert d.services["notifier"].alive
    finally:
        smtp.stop()
        await teams.stop()

    retried = {c: sum(1 for r in statuses if r["channel"] == c and r["attempts"] >= 2) for c in ("email", "teams")}
    print(f"\nalert channels down: {alerts} alerts, failed attempts while down {failures}, deliveries retried {retried}; after recovery "
          f"{len(smtp.received)} emails and {len(teams.accepted)} Teams cards delivered")
    assert alerts >= len(PATIENTS), "every unit alerted"
    assert {r["status"] for r in statuses} == {"delivered"}
    assert len(smtp.received) == alerts, "each alert emailed once"
    assert len(teams.accepted) == alerts and len(teams.requests) == alerts, "each alert posted to Teams once"
    assert {m.rcpt_tos[0] for m in smtp.received} == {f"{u[-4:]}@example.se" for u in PATIENTS}
    assert min(retried.values()) >= 1, "deliveries that failed while the channels were down were retried"
