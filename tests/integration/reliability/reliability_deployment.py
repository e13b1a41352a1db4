"""A deployment of every service (listing, continuity, notifier) as real processes against the shared
broker and a fresh database, and the seed the access tests read: two units' patients."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from flk.events.envelope import make_record
from flk.events.producer import publish_many
from flk.security.tokens import Role
from flk.settings import PlatformSettings
from tests.integration.continuity.continuity_stream import visit
from tests.integration.listing.listing_harness import (
    DOCTOR_1, DOCTOR_B, ROLE_1, ROLE_B, UNIT_A, UNIT_A_NAME, UNIT_B, UNIT_B_NAME, list_request, person,
    role_started, unit_register,
)
from tests.support.builders import a_patient_key

from reliability_support import (
    ServiceProcess, bearer, continuity_service, delete_topics_with_prefix, listing_service, notifier_service,
    platform_settings, token, wait_until,
)

PATIENT_A = a_patient_key(7001)  # listed at UNIT_A
PATIENT_B = a_patient_key(7002)  # listed at UNIT_B
PATIENT_C = a_patient_key(7003)  # listed at UNIT_A; the commands of the access matrix act on this one
TODAY = datetime.now(ZoneInfo("Europe/Stockholm")).date()
LISTED = ((PATIENT_A, UNIT_A), (PATIENT_B, UNIT_B), (PATIENT_C, UNIT_A))


@contextlib.asynccontextmanager
async def migrated_db(infra) -> AsyncIterator[str]:
    """A fresh database with every component's migrations (like the `migrated_database` fixture, any scope)."""
    from tools.migrations import migrate

    name = f"flk_rel_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{infra.postgres_app_user}"')
    finally:
        await admin.close()
    dsn = infra.dsn("app", database=name)
    await migrate(dsn)
    try:
        yield dsn
    finally:
        admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Deployment:
    settings: PlatformSettings
    dsn: str
    prefix: str
    bootstrap: str
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.services[service].base_url

    async def fetch(self, sql: str, *args) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def audit_rows_after(self, last_id: int) -> list[asyncpg.Record]:
        return await self.fetch("SELECT id, actor, actor_role, unit_id, patient_key, action, outcome "
                                "FROM platform.audit_log WHERE id > $1 ORDER BY id", last_id)

    async def last_audit_id(self) -> int:
        return (await self.fetch("SELECT coalesce(max(id), 0) AS n FROM platform.audit_log"))[0]["n"]


@contextlib.asynccontextmanager
async def running_deployment(infra, workdir, *, services: tuple[str, ...] = ("listing", "continuity", "notifier"),
                             env: dict[str, dict[str, str]] | None = None) -> AsyncIterator[Deployment]:
    """The services, started on a fresh topic prefix and database (not yet ready: see `ready`)."""
    from flk.events.admin import ensure_topics

    env = env or {}
    bootstrap = infra.kafka_bootstrap
    prefix = f"t{uuid.uuid4().hex[:10]}."
    await ensure_topics(bootstrap, prefix=prefix)
    factories = {"listing": listing_service, "continuity": continuity_service, "notifier": notifier_service}
    try:
        async with migrated_db(infra) as dsn:
            d = Deployment(platform_settings(bootstrap, prefix, dsn), dsn, prefix, bootstrap)
            for name in services:
                extra = dict(env.get(name, {}))
                if name == "notifier" and "listing" in d.services:  # the worklist reads the unit's lists there
                    extra.setdefault("FLK_NOTIFIER_LISTING_API_BASE_URL", d.services["listing"].base_url)
                d.services[name] = factories[name](bootstrap, prefix, dsn, workdir, **extra)
            try:
                for s in d.services.values():
                    s.start()
                yield d
            finally:
                for s in d.services.values():
                    s.stop()
    finally:
        await delete_topics_with_prefix(bootstrap, prefix)


async def ready(d: Deployment) -> None:
    for s in d.services.values():
        await s.ready()


async def seed_two_units(d: Deployment, producer) -> None:
    """The region's register (units A and B, a doctor each), PATIENT_A and _C listed at A and PATIENT_B at
    B through the listing service, three visits each; alert routing and an open care gap per unit."""
    facts = [make_record("care_unit.contracted.v1", unit_register(UNIT_A, UNIT_A_NAME), source="urn:test"),
             make_record("care_unit.contracted.v1", unit_register(UNIT_B, UNIT_B_NAME), source="urn:test"),
             make_record("practitioner_role.started.v1", role_started(ROLE_1, DOCTOR_1, UNIT_A), source="urn:test"),
             make_record("practitioner_role.started.v1", role_started(ROLE_B, DOCTOR_B, UNIT_B), source="urn:test")]
    facts += [make_record("person.registered.v1", person(p), source="urn:test") for p, _ in LISTED]
    await publish_many(producer, facts, d.prefix)
    admin = bearer(token(d.settings, Role.LISTING_ADMIN, subject="seed-admin"))
    async with httpx.AsyncClient(timeout=10) as client:
        for patient, unit in LISTED:
            async def listed(patient=patient, unit=unit) -> bool:
                r = await client.post(f"{d.url('listing')}/commands/listing.request.v1", headers=admin,
                                      json=list_request(patient, unit, on=TODAY - timedelta(days=30)))
                return r.status_code == 200
            await wait_until(listed, timeout_s=60, interval_s=0.5, what=f"listing {patient} at {unit}")
    visits = [visit(p, f"seed-{p[-6:]}-{n}", DOCTOR_1 if u == UNIT_A else DOCTOR_B,
                    f"{(TODAY - timedelta(days=20 * n)).isoformat()}T09:00:00Z", u)
              for p, u in LISTED for n in (1, 2, 3)]
    await publish_many(producer, visits, d.prefix)

    from services.notifier.service_layer.routing import build_routing, set_routing

    pool = await asyncpg.create_pool(d.dsn, min_size=1, max_size=2)
    try:
        now = datetime.now(timezone.utc)
        for patient, unit in LISTED[:2]:
            await set_routing(pool, build_routing(unit, f"Vårdcentral {unit[-4:]}", email_to=["vc@example.se"],
                                                  mode="daily_digest"), "seed", now)
            await pool.execute(
                "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
                "VALUES ($1, $2, $3, 'never_assigned', 5, false, $4)", uuid.uuid4(), patient, unit,
                now - timedelta(days=20))
    finally:
        await pool.close()

    async with httpx.AsyncClient(timeout=5) as client:
        async def all_indexed() -> bool:
            for p, unit in LISTED:
                r = await client.get(f"{d.url('continuity')}/patients/{p}/continuity", headers=admin)
                if r.status_code != 200 or r.json()["doctor"]["visits"] != 3 or r.json()["care_unit_id"] != unit:
                    return False
            return True

        await wait_until(all_indexed, timeout_s=60, what="the seeded patients, with their units, in the continuity worker")
