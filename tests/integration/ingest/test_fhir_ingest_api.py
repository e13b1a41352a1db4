"""The FHIR ingest endpoint against the real PostgreSQL and Kafka: Encounters and Bundles in, visit
events out (once), OperationOutcomes for bad input with nothing published, audit-logged writes."""
from __future__ import annotations

import asyncio
import contextlib
import json

import asyncpg
import httpx

from flk.events.envelope import read_record
from flk.settings import PlatformSettings
from flk.security.tokens import Role, issue_token
from services.ingest.entrypoints.api import create_app
from services.ingest.settings import IngestSettings
from tests.conftest import consume_all
from tests.support import fhir_examples as fx

JWT_SECRET = "ingest-integration-secret-0123456789"


def settings_for(bootstrap: str, prefix: str, database_url: str, **overrides) -> IngestSettings:
    platform = PlatformSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, jwt_verify_key=JWT_SECRET,
                                environment="test", database_url=database_url)
    return IngestSettings(platform=platform, relay_interval_s=0.1, **overrides)


@contextlib.asynccontextmanager
async def running(settings: IngestSettings, *, units=(fx.UNIT,), role=Role.EHR_INTEGRATION):
    app = create_app(settings)
    token = issue_token(settings.platform, "cosmic-integration", role, list(units))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/fhir+json"}) as client:
            yield client, app


async def visits_on_topic(bootstrap: str, prefix: str, expected: int, timeout_s: float = 15.0) -> list:
    records = await consume_all(bootstrap, prefix + "ehr.visits.v1", expected, timeout_s)
    return [read_record("ehr.visits.v1", r.key, r.value, r.headers) for r in records]


async def outbox(database_url: str) -> list[tuple[str, dict]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT event_type, data FROM ingest.outbox ORDER BY id")
    finally:
        await conn.close()
    return [(r["event_type"], json.loads(r["data"])) for r in rows]


async def wait_published(database_url: str, timeout_s: float = 10.0) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(int(timeout_s / 0.05)):
            if not await conn.fetchval("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the outbox was not published")
    finally:
        await conn.close()


async def test_an_encounter_is_published_as_a_visit_once_and_a_resent_encounter_changes_nothing(
        kafka_bootstrap, topic_prefix, migrated_database):
    settings = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    async with running(settings) as (client, _):
        first = await client.post("/fhir/Encounter", content=json.dumps(fx.encounter()))
        again = await client.put("/fhir/Encounter/enc-1", content=json.dumps(fx.encounter()))
        await wait_published(migrated_database)
        ready = (await client.get("/readyz")).json()
    assert first.status_code == 201, first.text
    assert ready["backlog"] == {"outbox": 0}  # what the main job waits on
    assert first.headers["content-type"].startswith("application/fhir+json")
    assert first.json()["issue"][0]["details"]["coding"][0]["code"] == "recorded"
    assert again.status_code == 200 and again.json()["issue"][0]["details"]["coding"][0]["code"] == "unchanged"
    [visit] = await visits_on_topic(kafka_bootstrap, topic_prefix, 1)
    await asyncio.sleep(0.5)
    assert len(await visits_on_topic(kafka_bootstrap, topic_prefix, 2, timeout_s=1.5)) == 1
    assert visit.event_type == "visit.recorded.v1"
    assert (visit.data["practitioner_id"], visit.data["care_unit_id"], visit.data["profession"],
            visit.data["contact_type"], visit.data["source_system"]) == (fx.DOCTOR, fx.UNIT, "läkare", "besok", "fhir")
    assert visit.key == visit.data["patient_key"] and visit.key.startswith("pk1_")
    conn = await asyncpg.connect(migrated_database)
    try:
        audit = await conn.fetch("SELECT actor, action, outcome, unit_id, patient_key FROM platform.audit_log")
        stored = await conn.fetch("SELECT * FROM ingest.encounter")
    finally:
        await conn.close()
    assert [tuple(r) for r in audit] == [("cosmic-integration", "ingest.encounter.write", "allowed", fx.UNIT,
                                          visit.key)]
    assert fx.TOLVAN not in str([dict(r) for r in stored])  # no personnummer stored in clear


async def test_a_new_version_of_an_encounter_replaces_the_visit(kafka_bootstrap, topic_prefix, migrated_database):
    settings = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    async with running(settings) as (client, _):
        await client.post("/fhir/Encounter", content=json.dumps(fx.encounter()))
        moved = fx.encounter(version="2", start="2026-11-03T13:00:00+01:00")
        replaced = await client.post("/fhir/Encounter", content=json.dumps(moved))
        cancelled = await client.post("/fhir/Encounter", content=json.dumps(fx.encounter(version="3", status="cancelled")))
        await wait_published(migrated_database)
    assert (replaced.status_code, cancelled.status_code) == (200, 200)
    events = await visits_on_topic(kafka_bootstrap, topic_prefix, 4)
    assert [e.event_type for e in events] == ["visit.recorded.v1", "visit.cancelled.v1", "visit.recorded.v1",
                                              "visit.cancelled.v1"]
    assert events[1].data["visit_id"] == events[0].data["visit_id"]
    assert events[3].data["visit_id"] == events[2].data["visit_id"] and events[3].data["reason"] == "cancelled"
    assert events[2].data["occurred_at"] == "2026-11-03T13:00:00+01:00"


async def test_a_bad_encounter_gets_an_operation_outcome_with_fhirpaths_and_nothing_is_published(
        kafka_bootstrap, topic_prefix, migrated_database, caplog):
    settings = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    bad = fx.encounter()
    bad["subject"]["identifier"]["value"] = "191212121213"
    del bad["serviceProvider"]
    wrong_type = fx.encounter()
    wrong_type["participant"] = {"individual": "Dr. X"}
    async with running(settings) as (client, _):
        invalid = await client.post("/fhir/Encounter", content=json.dumps(bad))
        unreadable = await client.post("/fhir/Encounter", content=json.dumps(wrong_type))
        not_json = await client.post("/fhir/Encounter", content=b"{not json")
        a_patient = await client.post("/fhir/Encounter", content=json.dumps({"resourceType": "Patient"}))
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["resourceType"] == "OperationOutcome"
    assert {e for i in body["issue"] for e in i["expression"]} == {"Encounter.subject.identifier.value",
                                                                   "Encounter.serviceProvider"}
    assert "191212121213" not in invalid.text and "191212121213" not in caplog.text  # nor in any log line
    assert unreadable.status_code == 400 and unreadable.json()["issue"][0]["expression"] == ["Encounter.participant"]
    assert not_json.status_code == 400 and a_patient.status_code == 400
    assert await outbox(migrated_database) == []


async def test_a_transaction_with_one_bad_entry_publishes_nothing_and_a_batch_answers_per_entry(
        kafka_bootstrap, topic_prefix, migrated_database):
    settings = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    good, bad = fx.encounter("good-1"), fx.encounter("bad-1", unit="SE2321000016-15TK")
    bad["participant"][0]["individual"] = {"reference": "Practitioner/missing"}
    async with running(settings) as (client, _):
        refused = await client.post("/fhir", content=json.dumps(fx.transaction_bundle([good, bad])))
        assert await outbox(migrated_database) == []
        batch = await client.post("/fhir", content=json.dumps(fx.transaction_bundle([good, bad], "batch")))
        await wait_published(migrated_database)
    assert refused.status_code == 422
    assert [e for i in refused.json()["issue"] for e in i["expression"]] == [
        "Bundle.entry[2].resource.participant[0].individual.reference"]
    assert batch.status_code == 200
    response = batch.json()
    assert response["type"] == "batch-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["200 OK", "201 Created", "422 Unprocessable Entity"]
    [event] = await visits_on_topic(kafka_bootstrap, topic_prefix, 1)
    assert event.event_type == "visit.recorded.v1"


async def test_hostile_requests_are_refused_with_an_operation_outcome(kafka_bootstrap, topic_prefix, migrated_database):
    settings = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    deep: dict = {"url": "http://example.org/x"}
    for _ in range(60):
        deep = {"url": "http://example.org/x", "extension": [deep]}
    nested = fx.encounter()
    nested["extension"] = [deep]
    too_many = fx.transaction_bundle([fx.encounter(f"e{i}") for i in range(1001)], "batch")
    async with running(settings, units=("SE2321000016-OTHER",)) as (client, app):
        deep_answer = await client.post("/fhir/Encounter", content=json.dumps(nested))
        over_limit = await client.post("/fhir", content=json.dumps(too_many))
        other_unit = await client.post("/fhir/Encounter", content=json.dumps(fx.encounter()))
        anonymous = await client.post("/fhir/Encounter", content=json.dumps(fx.encounter()),
                                      headers={"Authorization": ""})
        clinician = issue_token(settings.platform, "SE2321000016-U001", Role.CLINICIAN, [fx.UNIT])
        not_a_writer = await client.post("/fhir/Encounter", content=json.dumps(fx.encounter()),
                                         headers={"Authorization": f"Bearer {clinician}"})
        metrics = (await client.get("/metrics")).text
    for answer, status in ((deep_answer, 400), (over_limit, 413), (other_unit, 403), (anonymous, 401),
                           (not_a_writer, 403)):
        assert answer.status_code == status, (status, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert over_limit.json()["issue"][0]["code"] == "too-costly"
    assert other_unit.json()["issue"][0]["expression"] == ["Encounter.serviceProvider"]
    assert await outbox(migrated_database) == []
    assert 'flk_ingest_encounters_total{outcome="refused_forbidden"} 1.0' in metrics
    assert "pk1_" not in metrics and fx.UNIT not in metrics


async def test_a_1000_entry_bundle_is_ingested_in_one_request(kafka_bootstrap, topic_prefix, migrated_database):
    settings = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    encounters = [fx.encounter(f"big-{i}", pnr=fx.personnummer(__import__("datetime").date(1940 + i % 60, 1 + i % 12, 1 + i % 28), i % 1000))
                  for i in range(500)]  # 500 Patients + 500 Encounters = 1 000 entries
    bundle = fx.transaction_bundle(encounters)
    assert len(bundle["entry"]) == 1000
    async with running(settings) as (client, _):
        answer = await client.post("/fhir", content=json.dumps(bundle), timeout=60)
        await wait_published(migrated_database, 30)
    assert answer.status_code == 200, answer.text[:500]
    assert sum(e["response"]["status"] == "201 Created" for e in answer.json()["entry"]) == 500
    assert len(await outbox(migrated_database)) == 500
