"""The continuity API (access by listing unit, audit-logged) and the daily aggregate snapshots, with the
SÄBO and RUB 4–5 cohorts."""
from __future__ import annotations

import asyncpg
import httpx

from flk.security.tokens import Role, issue_token
from services.continuity.entrypoints.api import create_app
from tests.support.builders import DOCTOR_1, UNIT_A, UNIT_B, a_patient_key

from continuity_stream import (
    AS_OF, DOCTOR_2, eventually, flk_assigned, indices_of, listing, publish, risk, running_worker, sabo,
    service_settings, visit,
)


async def test_the_api_shows_a_patients_indices_to_their_units_staff_only_and_audit_logs_every_read(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    patient = a_patient_key(201)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, listing(patient), visit(patient, "v1"), visit(patient, "v2"),
                      visit(patient, "v3", DOCTOR_2))
        await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 3
                         and worker.processed_events >= 4)
        app = create_app(settings, worker.processor)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                own = issue_token(settings.platform, "SE2321000016-U001", Role.CLINICIAN, [UNIT_A])
                other = issue_token(settings.platform, "SE2321000016-U002", Role.CLINICIAN, [UNIT_B])
                url = f"/patients/{patient}/continuity"

                allowed = await client.get(url, headers={"Authorization": f"Bearer {own}"})
                denied = await client.get(url, headers={"Authorization": f"Bearer {other}"})
                anonymous = await client.get(url)
                unit = await client.get(f"/units/{UNIT_A}/continuity", headers={"Authorization": f"Bearer {own}"})
                other_unit = await client.get(f"/units/{UNIT_A}/continuity",
                                              headers={"Authorization": f"Bearer {other}"})

    assert allowed.status_code == 200
    body = allowed.json()
    assert (body["care_unit_id"], body["as_of"], body["doctor"]["visits"]) == (UNIT_A, AS_OF.isoformat(), 3)
    assert abs(body["doctor"]["coc"] - 1 / 3) < 1e-12
    assert denied.status_code == 404 and patient not in denied.text
    assert anonymous.status_code == 401
    assert unit.status_code == 200
    unit_rows = {(r["level"], r["cohort"]): r for r in unit.json()["aggregates"]}
    assert unit_rows[("unit", "all")]["eligible_doctor"] == 1
    assert other_unit.status_code == 403
    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch("SELECT actor, patient_key, unit_id, action, outcome FROM platform.audit_log "
                                "WHERE patient_key IS NOT NULL ORDER BY id")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("SE2321000016-U001", patient, UNIT_A, "continuity.patient.read", "allowed"),
        ("SE2321000016-U002", patient, UNIT_A, "continuity.patient.read", "denied"),
    ]


async def test_daily_snapshots_hold_region_unit_doctor_and_sabo_rows_and_the_baseline_function_compares_them(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    p1, p2, p3 = a_patient_key(211), a_patient_key(212), a_patient_key(213)
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    async with running_worker(settings) as worker:
        await publish(
            producer, topic_prefix,
            listing(p1), flk_assigned(p1, DOCTOR_1), sabo(p1),
            visit(p1, "a1"), visit(p1, "a2"), visit(p1, "a3"),                                # COC 1.0
            listing(p2), flk_assigned(p2, DOCTOR_1),
            visit(p2, "b1"), visit(p2, "b2", DOCTOR_2), visit(p2, "b3", DOCTOR_2),             # COC 1/3
            listing(p3), visit(p3, "c1"),                                                      # not eligible
        )
        await eventually(lambda: worker.processed_events >= 13)
        await worker.snapshot_now()                       # baseline day
        await publish(producer, topic_prefix, visit(p2, "b4", DOCTOR_2, "2026-03-16T09:00:00Z"))
        await eventually(lambda: worker.processed_events >= 14)
        await worker.advance_to(AS_OF.replace(day=20))    # a later day: b4 now counts
        await worker.snapshot_now()

    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch("SELECT * FROM continuity.aggregate_snapshot WHERE snapshot_date = $1", AS_OF)
        compared = await conn.fetch("SELECT * FROM continuity.goal_comparison($1) WHERE level = 'region' "
                                    "AND cohort = 'all' AND contacts = 'doctor'", AS_OF)
    finally:
        await conn.close()
    by = {(r["level"], r["entity_id"], r["cohort"]): r for r in rows}
    region = by[("region", "19", "all")]
    assert (region["listed_patients"], region["eligible_doctor"]) == (3, 2)
    assert abs(region["mean_coc_doctor"] - (1 + 1 / 3) / 2) < 1e-12
    assert list(region["coc_doctor_buckets"]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert by[("doctor", DOCTOR_1, "all")]["eligible_doctor"] == 2
    assert (by[("unit", UNIT_A, "sabo")]["listed_patients"], by[("unit", UNIT_A, "sabo")]["mean_coc_doctor"]) == (1, 1.0)
    [c] = compared
    assert (c["baseline_date"], c["now_date"]) == (AS_OF, AS_OF.replace(day=20))
    now = (1 + (0 + 6) / 12) / 2  # b: L001, L002 x3 -> COC (1+9-4)/(4*3) = 0.5
    assert abs(c["now_mean"] - now) < 1e-12 and (c["now_n"], c["baseline_n"]) == (2, 2)
    assert abs(c["change"] - (now - region["mean_coc_doctor"]) / region["mean_coc_doctor"]) < 1e-9
    # no data coverage was recorded: the windows are not known to be complete, so no verdict on the goal
    assert (c["comparable"], c["now_complete"], c["verdict"]) == (False, False, "incomplete_window")
    assert c["panel_n"] == 2  # both eligible patients at both dates


async def test_rub_4_5_patients_form_the_rub45_cohort_in_the_snapshots_the_api_and_the_goal_comparison(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    """Through Kafka: the latest ACG assessment decides the band (a later one replaces it, an older one
    arriving late does not); a worker that replays every topic from the start writes the same rows."""
    p1, p2, p3 = a_patient_key(451), a_patient_key(452), a_patient_key(453)
    events = (
        listing(p1), flk_assigned(p1, DOCTOR_1), risk(p1, 4, "2026-01-01T03:00:00Z"),
        visit(p1, "r1a"), visit(p1, "r1b"), visit(p1, "r1c"),                                  # COC 1.0, RUB 4
        listing(p2), flk_assigned(p2, DOCTOR_2), risk(p2, 5, "2026-01-01T03:00:00Z"),
        visit(p2, "r2a"), visit(p2, "r2b", DOCTOR_2), visit(p2, "r2c", DOCTOR_2),
        risk(p2, 2, "2026-03-01T03:00:00Z"),                                                   # reassessed lower
        listing(p3), flk_assigned(p3, DOCTOR_2), risk(p3, 5, "2026-03-01T03:00:00Z"),
        visit(p3, "r3a", DOCTOR_2), visit(p3, "r3b", DOCTOR_2), visit(p3, "r3c", DOCTOR_1),   # COC 1/3, RUB 5
        risk(p3, 1, "2026-02-01T03:00:00Z"),                                                   # older, late: ignored
    )
    settings = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    async with running_worker(settings) as worker:
        await publish(producer, topic_prefix, *events)
        await eventually(lambda: worker.processed_events >= len(events))
        await worker.snapshot_now()
        app = create_app(settings, worker.processor)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                token = issue_token(settings.platform, "SE2321000016-U001", Role.CLINICIAN, [UNIT_A])
                own = {"Authorization": f"Bearer {token}"}
                unit = (await client.get(f"/units/{UNIT_A}/continuity", headers=own)).json()
                patients = {p: (await client.get(f"/patients/{p}/continuity", headers=own)).json() for p in (p1, p2, p3)}
        await worker.advance_to(AS_OF.replace(day=20))
        await worker.snapshot_now()

    later = AS_OF.replace(day=20)
    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch("SELECT * FROM continuity.aggregate_snapshot WHERE snapshot_date = $1 "
                                "AND cohort = 'rub45'", AS_OF)
        members = await conn.fetch("SELECT patient_key, rub45 FROM continuity.patient_snapshot WHERE snapshot_date = $1",
                                   AS_OF)
        compared = await conn.fetch("SELECT * FROM continuity.goal_comparison($1) WHERE cohort = 'rub45' "
                                    "AND contacts = 'doctor' AND level = 'region'", AS_OF)
        first_run = await conn.fetch("SELECT level, entity_id, cohort, listed_patients, eligible_doctor, mean_coc_doctor "
                                     "FROM continuity.aggregate_snapshot WHERE snapshot_date = $1 "
                                     "ORDER BY level, entity_id, cohort", later)
    finally:
        await conn.close()

    coc_p3 = (2 ** 2 + 1 ** 2 - 3) / (3 * 2)  # D2, D2, D1: (Σn² − n) / (n(n − 1))
    by = {(r["level"], r["entity_id"]): r for r in rows}
    assert set(by) == {("region", "19"), ("unit", UNIT_A), ("doctor", DOCTOR_1), ("doctor", DOCTOR_2)}
    assert (by[("unit", UNIT_A)]["listed_patients"], by[("unit", UNIT_A)]["eligible_doctor"]) == (2, 2)
    assert abs(by[("region", "19")]["mean_coc_doctor"] - (1.0 + coc_p3) / 2) < 1e-12
    assert (by[("doctor", DOCTOR_1)]["listed_patients"], by[("doctor", DOCTOR_2)]["listed_patients"]) == (1, 1)
    assert {r["patient_key"]: r["rub45"] for r in members} == {p1: True, p2: False, p3: True}

    unit_rows = {(r["level"], r["entity_id"], r["cohort"]): r for r in unit["aggregates"]}
    assert unit_rows[("unit", UNIT_A, "rub45")]["listed_patients"] == 2
    assert unit_rows[("unit", UNIT_A, "all")]["listed_patients"] == 3
    assert [(patients[p]["rub"], patients[p]["rub45"]) for p in (p1, p2, p3)] == [(4, True), (2, False), (5, True)]

    [c] = compared  # the cohort has no national target: every figure, no goal, no verdict
    assert (c["goal"], c["verdict"], c["baseline_n"], c["now_n"], c["panel_n"]) == (None, None, 2, 2, 2)

    # a worker without local state restores its tables from the changelog (docs/adr/0008): the same rows,
    # nobody counted twice
    async with running_worker(settings) as replayed:
        await eventually(lambda: len(replayed.store.partitions) == 6 and not replayed._needs_restore
                         and replayed.restored_records > 0)
        await replayed.advance_to(later)
        await replayed.snapshot_now()
    conn = await asyncpg.connect(migrated_database)
    try:
        second_run = await conn.fetch("SELECT level, entity_id, cohort, listed_patients, eligible_doctor, "
                                      "mean_coc_doctor FROM continuity.aggregate_snapshot WHERE snapshot_date = $1 "
                                      "ORDER BY level, entity_id, cohort", later)
    finally:
        await conn.close()
    assert [tuple(r) for r in second_run] == [tuple(r) for r in first_run]
    assert ("region", "19", "rub45", 2, 2) in [tuple(r)[:5] for r in second_run]
