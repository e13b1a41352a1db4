"""End to end: a FHIR Bundle of Swedish Encounters in -> the visit events on Kafka -> the continuity
worker -> the patient's indices, read through the continuity API (and a new version of one Encounter,
entered in error, takes its visit out again)."""
from __future__ import annotations

import json

import httpx

from flk.security.pseudonym import PersonId, patient_key
from flk.security.tokens import Role, issue_token
from flk.settings import DEV_PSEUDONYM_KEY
from services.continuity.entrypoints.api import create_app as continuity_app
from tests.integration.continuity.continuity_stream import (
    eventually, indices_of, listing, publish, running_worker, service_settings,
)
from tests.support import fhir_examples as fx

from test_fhir_ingest_api import running, settings_for, wait_published

OTHER_DOCTOR = "SE2321000016-8Q2M"


async def test_a_bundle_in_changes_the_patients_indices_through_the_continuity_api(
        kafka_bootstrap, topic_prefix, producer, migrated_database):
    patient = patient_key(PersonId("personnummer", fx.TOLVAN), DEV_PSEUDONYM_KEY.encode())
    continuity = service_settings(kafka_bootstrap, topic_prefix, migrated_database)
    ingest = settings_for(kafka_bootstrap, topic_prefix, migrated_database)
    encounters = [fx.encounter("v-1", start="2026-02-02T09:00:00+01:00"),
                  fx.encounter("v-2", start="2026-02-20T10:30:00+01:00"),
                  fx.encounter("v-3", practitioner=OTHER_DOCTOR, start="2026-03-05T08:15:00+01:00"),
                  fx.telephone_contact_by_nurse("v-4") | {"period": {"start": "2026-03-06T13:00:00+01:00"}}]
    async with running_worker(continuity) as worker:
        await publish(producer, topic_prefix, listing(patient, fx.UNIT))
        api = continuity_app(continuity, worker.processor)

        async def read_indices() -> dict:
            token = issue_token(continuity.platform, "SE2321000016-U001", Role.CLINICIAN, [fx.UNIT])
            async with api.router.lifespan_context(api):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://test") as c:
                    answer = await c.get(f"/patients/{patient}/continuity", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            return answer.json()

        async with running(ingest) as (client, _):
            sent = await client.post("/fhir", content=json.dumps(fx.transaction_bundle(encounters)))
            assert sent.status_code == 200, sent.text
            await wait_published(migrated_database)
            await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 3)
            before = await read_indices()

            in_error = fx.encounter("v-3", practitioner=OTHER_DOCTOR, start="2026-03-05T08:15:00+01:00",
                                    version="2", status="entered-in-error")
            taken_back = await client.post("/fhir", content=json.dumps(fx.transaction_bundle([in_error])))
            assert taken_back.status_code == 200, taken_back.text
            await wait_published(migrated_database)
            await eventually(lambda: (i := indices_of(worker, patient)) and i.doctor.visits == 2)
            after = await read_indices()

    assert before["care_unit_id"] == fx.UNIT
    assert before["doctor"]["visits"] == 3 and abs(before["doctor"]["coc"] - 1 / 3) < 1e-12  # 2 + 1: (4+1-3)/(3*2)
    assert before["total"]["visits"] == 4
    assert after["doctor"]["visits"] == 2 and after["doctor"]["coc"] == 1.0
