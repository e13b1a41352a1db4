"""A snapshot of a past day is that day's figures, whenever the replay reached it: a state that already
holds facts dated after it (a re-run over topics that keep them) does not rewrite it."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import asyncpg
import httpx

from flk.events.envelope import make_record
from flk.security.tokens import Role, issue_token
from services.continuity.adapters.coverage import pin_baseline, record_coverage
from services.continuity.entrypoints.api import create_app
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key

from continuity_stream import (
    AS_OF, DOCTOR_2, eventually, flk_assigned, listing, publish, running_worker, service_settings, visit,
)

LATER = datetime(2026, 4, 20, 8, 0, tzinfo=timezone.utc)


def later(event_type: str, data: dict):
    return make_record(event_type, data, source="later/test", time=LATER)


async def _region_rows(database_url: str):
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT level, entity_id, cohort, listed_patients, eligible_doctor, mean_coc_doctor, sd_coc_doctor, "
            "eligible_total, mean_coc_total, computed_at FROM continuity.aggregate_snapshot "
            "WHERE snapshot_date = $1 ORDER BY level, entity_id, cohort", AS_OF)
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def test_a_snapshot_of_a_past_day_is_not_rewritten_from_a_state_that_holds_later_listings_and_visits(
        kafka_bootstrap, topic_prefix, producer, migrated_database, tmp_path):
    p1, p2 = a_patient_key(301), a_patient_key(302)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database, store="rocksdb",
                                data_dir=tmp_path / "continuity")
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix,
                      listing(p1), flk_assigned(p1), visit(p1, "a1"), visit(p1, "a2"), visit(p1, "a3", DOCTOR_2),
                      listing(p2), visit(p2, "b1"), visit(p2, "b2"), visit(p2, "b3"))
        await eventually(lambda: worker.processed_events >= 9)
        assert await worker.snapshot_now() is True
        first = await _region_rows(migrated_database)

        # a later fact: p2 moves to unit B on 20 April (none of its visits were there)
        await publish(producer, topic_prefix,
                      later("listing.started.v1", {
                          "listing_id": "5b6f9a3e-3f1c-4d2a-9c1e-0a1b2c3d4e5f", "patient_key": p2, "care_unit_id": UNIT_B,
                          "started_on": "2026-04-20", "responsibility_from": "2026-04-20",
                          "origin": "active_choice", "initiated_by": "person"}))
        await eventually(lambda: worker.processed_events >= 10)
        assert await worker.snapshot_now() is False          # this state is not the state of AS_OF
    assert await _region_rows(migrated_database) == first

    # a re-run: a new worker process on the same state, pinned to the same day
    async with running_worker(settings) as again:
        await eventually(lambda: again.processor.known_until() is not None)
        assert again.processor.known_until() == date(2026, 4, 20)
        assert await again.snapshot_now() is False
    assert await _region_rows(migrated_database) == first
    by = {(r["level"], r["entity_id"], r["cohort"]): r for r in first}
    region = by[("region", "19", "all")]
    assert (region["listed_patients"], region["eligible_doctor"]) == (2, 2)
    assert abs(region["mean_coc_doctor"] - (1 / 3 + 1) / 2) < 1e-12   # p1: L001 x2 + L002 -> 1/3; p2: 1


async def test_the_api_gives_the_regions_goal_comparison_and_coverage_to_staff_but_not_to_patients(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    p1 = a_patient_key(311)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(p1), visit(p1, "c1"), visit(p1, "c2"), visit(p1, "c3"))
        await eventually(lambda: worker.processed_events >= 4)
        conn = await asyncpg.connect(migrated_database)
        try:
            await record_coverage(conn, "19", datetime(2020, 1, 1).date(), source="configuration", note="test")
            await pin_baseline(conn, "19", AS_OF, note="test baseline")
        finally:
            await conn.close()
        assert await worker.snapshot_now() is True                 # the baseline day
        await worker.advance_to(AS_OF.replace(day=20))
        assert await worker.snapshot_now() is True                 # now
        app = create_app(settings, worker.served)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                analyst = {"Authorization": "Bearer " + issue_token(settings.platform, "analyst-1", Role.ANALYST)}
                patient = {"Authorization": "Bearer " + issue_token(settings.platform, "p", Role.PATIENT,
                                                                    patient_key=p1)}
                goals = await client.get("/regions/19/goals", headers=analyst)
                a_staff = {"Authorization": "Bearer " + issue_token(settings.platform, "c-a", Role.CLINICIAN, [UNIT_A])}
                b_staff = {"Authorization": "Bearer " + issue_token(settings.platform, "c-b", Role.CLINICIAN, [UNIT_B])}
                own_units = await client.get("/regions/19/goals?units=true", headers=a_staff)
                other_units = await client.get("/regions/19/goals?units=true", headers=b_staff)
                coverage = await client.get("/regions/19/coverage", headers=analyst)
                other_region = await client.get("/regions/01/goals", headers=analyst)
                as_patient = await client.get("/regions/19/goals", headers=patient)
                status = await client.get("/status")

    assert goals.status_code == 200, goals.text
    body = goals.json()
    assert body["baseline"] == AS_OF.isoformat()                  # the pinned one
    g2 = next(r for r in body["rows"] if r["goal"] == "G2" and r["contacts"] == "doctor")
    assert (g2["baseline_n"], g2["now_n"], g2["now_complete"], g2["baseline_complete"]) == (1, 1, True, True)
    assert g2["verdict"] == "too_few_patients"                      # one patient says nothing about a region
    assert p1 not in goals.text
    # a unit's rows go to its own staff only; the region's rows to anyone working in the region
    assert {r["entity_id"] for r in own_units.json()["rows"] if r["level"] == "unit"} == {UNIT_A}
    assert [r for r in other_units.json()["rows"] if r["level"] == "unit"] == []
    assert any(r["level"] == "region" for r in other_units.json()["rows"])
    assert coverage.status_code == 200
    assert (coverage.json()["complete_from"], coverage.json()["source"]) == ("2020-01-01", "configuration")
    assert other_region.status_code == 404 and "region 19" in other_region.json()["detail"]
    assert as_patient.status_code == 403
    assert status.json() == {"region_code": "19", "as_of": "2026-03-20", "known_until": "2026-03-01",
                             "replica": None, "partitions": [0, 1, 2, 3, 4, 5]}  # one worker: every partition


async def test_a_late_arriving_visit_dated_before_the_day_does_not_stop_that_days_snapshot(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    p1 = a_patient_key(321)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(p1), visit(p1, "d1"), visit(p1, "d2"))
        await eventually(lambda: worker.processed_events >= 3)
        await publish(producer, topic_prefix,      # recorded in April, about a visit on 10 March
                      later("visit.recorded.v1", {
                          "visit_id": "d3", "patient_key": p1, "practitioner_id": DOCTOR_2, "profession": "läkare",
                          "care_unit_id": UNIT_A, "contact_type": "besok",
                          "occurred_at": "2026-03-10T09:00:00Z"}))
        await eventually(lambda: worker.processed_events >= 4)
        assert worker.processor.known_until() == date(2026, 3, 10)
        assert await worker.snapshot_now() is True
    rows = {(r["level"], r["cohort"]): r for r in await _region_rows(migrated_database)}
    assert rows[("region", "all")]["eligible_doctor"] == 1       # d3 counts: three visits


async def test_a_planned_fact_dated_after_today_does_not_stop_todays_snapshot(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    from services.continuity.settings import ContinuityServiceSettings

    today = ContinuityServiceSettings.calendar_today()
    p1 = a_patient_key(331)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database, as_of=today)
    async with running_worker(settings) as worker:
        tomorrow = (today + timedelta(days=1)).isoformat()
        await publish(producer, topic_prefix, listing(p1, started=tomorrow))   # a switch that starts tomorrow
        await eventually(lambda: worker.processed_events >= 1)
        assert worker.processor.known_until() == today + timedelta(days=1)
        assert await worker.snapshot_now() is True
