"""Bearer tokens, unit scoping and the audit log, through a real FastAPI app and PostgreSQL."""
from __future__ import annotations

from typing import Annotated

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from flk.api import install_platform, platform_lifespan
from flk.security.fastapi import AccessGuard, access_guard
from flk.security.tokens import Role, issue_token
from flk.settings import PlatformSettings
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key

PATIENT_AT_A = a_patient_key(1)
LISTING = {PATIENT_AT_A: UNIT_A}


def make_app(settings: PlatformSettings) -> FastAPI:
    app = FastAPI(lifespan=platform_lifespan(settings))
    install_platform(app, settings)

    @app.get("/patients/{patient_key}")
    async def read_patient(patient_key: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await guard.patient("test.patient.read", patient_key, LISTING.get(patient_key), purpose="vard")
        return {"patient_key": patient_key, "unit": LISTING[patient_key]}

    return app


@pytest.fixture
async def client(migrated_database):
    settings = PlatformSettings(database_url=migrated_database, jwt_verify_key="integration-secret-0123456789abcdef")
    app = make_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            c.settings = settings
            yield c


async def audit_rows(dsn: str) -> list:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT actor, actor_role, unit_id, patient_key, action, purpose, outcome FROM platform.audit_log ORDER BY id")
    finally:
        await conn.close()


async def test_unit_staff_read_their_patient_and_the_read_is_audit_logged(client, migrated_database):
    token = issue_token(client.settings, "SE2321000016-U001", Role.CLINICIAN, [UNIT_A])

    response = await client.get(f"/patients/{PATIENT_AT_A}", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    rows = await audit_rows(migrated_database)
    assert [dict(r) for r in rows] == [{
        "actor": "SE2321000016-U001", "actor_role": "clinician", "unit_id": UNIT_A, "patient_key": PATIENT_AT_A,
        "action": "test.patient.read", "purpose": "vard", "outcome": "allowed",
    }]


async def test_another_units_staff_get_404_and_the_attempt_is_audit_logged(client, migrated_database):
    token = issue_token(client.settings, "SE2321000016-U002", Role.CLINICIAN, [UNIT_B])

    response = await client.get(f"/patients/{PATIENT_AT_A}", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 404
    assert PATIENT_AT_A not in response.text
    rows = await audit_rows(migrated_database)
    assert [(r["actor"], r["outcome"]) for r in rows] == [("SE2321000016-U002", "denied")]


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
async def test_missing_or_malformed_token_gets_401_with_a_reason(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get(f"/patients/{PATIENT_AT_A}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]
