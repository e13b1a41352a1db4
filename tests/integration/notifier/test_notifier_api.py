"""The notifier's HTTP API: a unit's open-gap summary (counts only, audit-logged) and routing admin."""
from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from flk.security.tokens import Role, issue_token
from services.notifier.entrypoints.api import create_app
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key

from notifier_harness import T0


@pytest.fixture
async def api(notifier):
    app = create_app(notifier.settings, run_workers=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


def _token(notifier, role: Role, units: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(notifier.settings.platform, 'SE2321000016-U001', role, units)}"}


async def test_unit_summary_counts_open_gaps_without_patient_keys_and_is_audit_logged(notifier, api):
    for serial, (cause, rub, sabo) in enumerate([("never_assigned", 5, False), ("doctor_left", 4, True)], start=1):
        await notifier.pool.execute(
            "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            uuid.uuid4(), a_patient_key(serial), UNIT_A, cause, rub, sabo, T0 - timedelta(days=3 * serial))

    response = await api.get(f"/units/{UNIT_A}/care-gaps/summary", headers=_token(notifier, Role.CLINICIAN, [UNIT_A]))

    assert response.status_code == 200
    body = response.json()
    assert (body["open_gaps"], body["sabo"]) == (2, 1)
    assert body["by_cause"] == {"never_assigned": 1, "doctor_left": 1}
    assert body["by_rub"] == {"5": 1, "4": 1}
    assert "pk1_" not in response.text
    audit = await notifier.fetch("SELECT action, unit_id, outcome, patient_key FROM platform.audit_log")
    assert [tuple(r) for r in audit] == [("notifier.care_gaps.summary.read", UNIT_A, "allowed", None)]


async def test_unit_summary_needs_a_token_for_that_unit(notifier, api):
    assert (await api.get(f"/units/{UNIT_A}/care-gaps/summary")).status_code == 401
    other = await api.get(f"/units/{UNIT_A}/care-gaps/summary", headers=_token(notifier, Role.CLINICIAN, [UNIT_B]))
    assert other.status_code == 403
    audit = await notifier.fetch("SELECT outcome FROM platform.audit_log")
    assert [r["outcome"] for r in audit] == ["denied"]


async def test_routing_is_set_by_an_administrator_and_refused_to_a_clinician(notifier, api):
    body = {"unit_name": "VC Centrum", "email_to": ["vc@example.se"], "teams_webhook_secret_ref": "teams-vca1",
            "mode": "immediate", "quiet_hours": "22:00-07:00", "escalation_after_days": 10}

    refused = await api.put(f"/units/{UNIT_A}/routing", json=body, headers=_token(notifier, Role.CLINICIAN, [UNIT_A]))
    assert refused.status_code == 403
    url_instead_of_ref = await api.put(f"/units/{UNIT_A}/routing", headers=_token(notifier, Role.LISTING_ADMIN, []),
                                       json=body | {"teams_webhook_secret_ref": "https://x.example/hook"})
    assert url_instead_of_ref.status_code == 422
    stored = await api.put(f"/units/{UNIT_A}/routing", json=body, headers=_token(notifier, Role.LISTING_ADMIN, []))
    assert stored.status_code == 200

    shown = await api.get(f"/units/{UNIT_A}/routing", headers=_token(notifier, Role.VERKSAMHETSCHEF, [UNIT_A]))
    assert shown.json() | {} == {
        "care_unit_id": UNIT_A, "unit_name": "VC Centrum", "email_to": ["vc@example.se"],
        "teams_webhook_secret_ref": "teams-vca1", "mode": "immediate", "digest_hour": 7,
        "quiet_hours": "22:00-07:00", "escalation_after_days": 10, "escalation_email": [],
        "digest_when_empty": False, "timezone": "Europe/Stockholm"}
    actions = await notifier.fetch("SELECT action, outcome FROM platform.audit_log ORDER BY id")
    assert [tuple(r) for r in actions] == [
        ("notifier.routing.update", "denied"), ("notifier.routing.update", "allowed"),
        ("notifier.routing.update", "allowed"), ("notifier.routing.read", "allowed")]


async def test_metrics_and_health_are_served(notifier, api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert "flk_notifier_alerts_sent_total" in metrics.text


async def test_readyz_reports_the_notifiers_backlog_of_unannounced_gaps_at_routed_units(notifier, api):
    assert (await api.get("/readyz")).json() == {
        "status": "ready", "backlog": {"outbox": 0, "gaps_unannounced": 0, "deliveries_pending": 0}}
    await notifier.route(UNIT_A)
    gaps = []
    for serial, unit in enumerate([UNIT_A, UNIT_B, UNIT_A], start=1):  # UNIT_B has no routing: nobody to tell
        gaps.append(uuid.uuid4())
        await notifier.pool.execute(
            "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
            "VALUES ($1, $2, $3, 'never_assigned', 5, false, $4)", gaps[-1], a_patient_key(serial), unit, T0)

    assert (await api.get("/readyz")).json()["backlog"] == {"outbox": 0, "gaps_unannounced": 2, "deliveries_pending": 0}
    # an alert that announced the first gap (among others): that one is no longer waiting
    await notifier.pool.execute(
        "INSERT INTO notifier.alert (alert_id, care_unit_id, kind, unit_name, gap_count, gap_ids, summary, planned_at) "
        "VALUES ($1, $2, 'new_gaps', 'A', 2, $3, '{}', $4)", uuid.uuid4(), UNIT_A, [uuid.uuid4(), gaps[0]], T0)
    assert (await api.get("/readyz")).json()["backlog"] == {"outbox": 0, "gaps_unannounced": 1, "deliveries_pending": 0}
