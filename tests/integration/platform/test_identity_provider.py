"""Tokens of the region's identity provider, issued by a real Keycloak (tests/support/keycloak.py),
through a real FastAPI app with the platform's guard and PostgreSQL's audit log.

clinician-a works at unit A, clinician-b at unit B (the realm file's user attribute hsaUnitIds,
mapped into the token's hsa_unit_ids), listing-admin is a region administrator.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from flk.api import install_platform, platform_lifespan
from tools.infra.keycloak import realm_definition
from flk.security.fastapi import AccessGuard, access_guard
from flk.security.tokens import Role, issue_token, verify_token
from flk.settings import PlatformSettings
from tests.support.builders import UNIT_A, UNIT_B, a_patient_key
from tests.support.keycloak import OTHER_REALM, LocalProvider

PATIENT_AT_A = a_patient_key(1)
PATIENT_AT_B = a_patient_key(2)
LISTING = {PATIENT_AT_A: UNIT_A, PATIENT_AT_B: UNIT_B}
CLI_MAPPERS = next(c for c in realm_definition()["clients"] if c["clientId"] == "flk-cli")["protocolMappers"]


def make_app(settings: PlatformSettings) -> FastAPI:
    app = FastAPI(lifespan=platform_lifespan(settings))
    install_platform(app, settings)

    @app.get("/patients/{patient_key}")
    async def read_patient(patient_key: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await guard.patient("test.patient.read", patient_key, LISTING.get(patient_key), purpose="vard")
        return {"patient_key": patient_key}

    @app.get("/units/{unit_id}/worklist")
    async def unit_patients(unit_id: str, guard: Annotated[AccessGuard, Depends(access_guard)]) -> dict:
        await guard.unit("test.unit.patients", unit_id, patient_level=True)
        return {"unit_id": unit_id}

    return app


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def status(self, path: str, token: str) -> int:
        return (await self.client.get(path, headers={"Authorization": f"Bearer {token}"})).status_code

    async def refusal(self, path: str, token: str) -> tuple[int, str]:
        answer = await self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        return answer.status_code, answer.json().get("detail", "")


async def serve(settings: PlatformSettings):
    app = make_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield Api(client)


@pytest.fixture
async def api(identity_provider: LocalProvider, migrated_database: str):
    async for a in serve(identity_provider.platform(database_url=migrated_database, jwt_leeway_s=0)):
        yield a


async def audit_rows(dsn: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT actor, actor_role, unit_id, patient_key, outcome FROM platform.audit_log ORDER BY id")
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


def test_a_provider_token_names_its_users_role_and_hsa_unit(identity_provider: LocalProvider):
    settings = identity_provider.platform()

    a = verify_token(settings, identity_provider.token("clinician-a"))
    b = verify_token(settings, identity_provider.token("clinician-b"))
    admin = verify_token(settings, identity_provider.token("listing-admin"))

    assert (a.role, a.units) == (Role.CLINICIAN, frozenset({UNIT_A}))
    assert (b.role, b.units) == (Role.CLINICIAN, frozenset({UNIT_B}))
    assert (admin.role, admin.units) == (Role.LISTING_ADMIN, frozenset())
    assert a.subject != b.subject


async def test_the_access_matrix_holds_with_provider_issued_tokens(identity_provider, api, migrated_database):
    tokens = {user: identity_provider.token(user) for user in ("clinician-a", "clinician-b", "listing-admin")}
    paths = {"patient at A": f"/patients/{PATIENT_AT_A}", "patient at B": f"/patients/{PATIENT_AT_B}",
             "worklist A": f"/units/{UNIT_A}/worklist", "worklist B": f"/units/{UNIT_B}/worklist"}

    seen = {(user, what): await api.status(path, token) for user, token in tokens.items() for what, path in paths.items()}

    assert seen == {
        ("clinician-a", "patient at A"): 200, ("clinician-a", "patient at B"): 404,
        ("clinician-a", "worklist A"): 200, ("clinician-a", "worklist B"): 403,
        ("clinician-b", "patient at A"): 404, ("clinician-b", "patient at B"): 200,
        ("clinician-b", "worklist A"): 403, ("clinician-b", "worklist B"): 200,
        ("listing-admin", "patient at A"): 200, ("listing-admin", "patient at B"): 200,
        ("listing-admin", "worklist A"): 200, ("listing-admin", "worklist B"): 200,
    }
    rows = await audit_rows(migrated_database)
    assert len(rows) == 12, "every read and every refusal is audit-logged"
    assert {(r[1], r[4]) for r in rows} == {("clinician", "allowed"), ("clinician", "denied"),
                                            ("listing_admin", "allowed")}


async def test_local_development_tokens_are_still_accepted_beside_the_providers(api):
    settings: PlatformSettings = PlatformSettings()
    local = issue_token(settings, "SE2321000016-U001", Role.CLINICIAN, [UNIT_A])

    assert await api.status(f"/patients/{PATIENT_AT_A}", local) == 200


async def test_a_token_of_another_realm_is_refused_with_401(identity_provider, api):
    other = identity_provider.token("clinician-a", realm=OTHER_REALM)

    status, reason = await api.refusal(f"/patients/{PATIENT_AT_A}", other)

    assert status == 401
    assert "signature" in reason or "not valid" in reason


async def test_a_provider_token_for_another_audience_is_refused_with_401(identity_provider, api):
    client_id = f"flk-cli-noaud-{uuid.uuid4().hex[:8]}"
    mappers = [m for m in CLI_MAPPERS if m["protocolMapper"] != "oidc-audience-mapper"]
    with identity_provider.admin() as admin:
        admin.create_client("flk", {"clientId": client_id, "publicClient": True, "directAccessGrantsEnabled": True,
                                    "standardFlowEnabled": False, "protocolMappers": mappers})
    token = identity_provider.token("clinician-a", client_id=client_id)

    status, reason = await api.refusal(f"/patients/{PATIENT_AT_A}", token)

    assert status == 401
    assert "Audience" in reason or "MissingRequiredClaim" in reason


async def test_an_expired_provider_token_is_refused_with_401(identity_provider, api):
    client_id = f"flk-cli-short-{uuid.uuid4().hex[:8]}"
    with identity_provider.admin() as admin:
        admin.create_client("flk", {"clientId": client_id, "publicClient": True, "directAccessGrantsEnabled": True,
                                    "standardFlowEnabled": False, "protocolMappers": CLI_MAPPERS,
                                    "attributes": {"access.token.lifespan": "5"}})
    token = identity_provider.token("clinician-a", client_id=client_id)
    issued = time.monotonic()  # (at or after the token's iat: it expires at the latest 5 s from here)
    # before it expires (5 s: under load the first request, with the realm's keys fetched, took over 1 s)...
    assert await api.status(f"/patients/{PATIENT_AT_A}", token) == 200
    await asyncio.sleep(max(0.0, issued + 6.2 - time.monotonic()))

    assert await api.refusal(f"/patients/{PATIENT_AT_A}", token) == (401, "token expired")


async def test_a_rotated_signing_key_is_picked_up_without_a_restart(identity_provider, migrated_database):
    realm = f"rotation-{uuid.uuid4().hex[:8]}"
    with identity_provider.admin() as admin:
        admin.create_realm(realm_definition(realm))
    settings = identity_provider.platform(realm, database_url=migrated_database, oidc_jwks_min_refetch_s=1.0)
    async for api in serve(settings):
        before = identity_provider.token("clinician-a", realm=realm)
        assert await api.status(f"/patients/{PATIENT_AT_A}", before) == 200  # keys fetched and cached

        with identity_provider.admin() as admin:  # a new RSA key of higher priority; the old ones withdrawn
            old = [c for c in admin.components(realm) if c["providerId"] in ("rsa-generated", "rsa-enc-generated")]
            admin.add_component(realm, {"name": "rotated", "providerId": "rsa-generated",
                                        "providerType": "org.keycloak.keys.KeyProvider",
                                        "config": {"priority": ["500"], "algorithm": ["RS256"]}})
            for component in old:
                admin.delete_component(realm, component["id"])
        await asyncio.sleep(1.1)  # unknown key ids refetch the key set at most once a second here
        after = identity_provider.token("clinician-a", realm=realm)

        assert _kid(after) != _kid(before)
        assert await api.status(f"/patients/{PATIENT_AT_A}", after) == 200


def _kid(token: str) -> str:
    import jwt

    return jwt.get_unverified_header(token)["kid"]
