"""Fixtures of the reliability tests: a deployment of every service that exists, as real processes
against the shared broker and a fresh database, seeded with two units' patients."""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import pytest

from flk.events.producer import publish_many
from flk.settings import PlatformSettings
from tests.integration.continuity.continuity_stream import listing, visit
from tests.support.builders import DOCTOR_1, UNIT_A, UNIT_B, a_patient_key

from reliability_support import (
    ServiceProcess, bearer, continuity_service, notifier_service, platform_settings, token, wait_until,
)

PATIENT_A = a_patient_key(7001)  # listed at UNIT_A
PATIENT_B = a_patient_key(7002)  # listed at UNIT_B


@contextlib.asynccontextmanager
async def migrated_db(infra) -> AsyncIterator[str]:
    """A fresh database with every component's migrations (like the `migrated_database` fixture, any scope)."""
    from flk.db.migrate import migrate

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
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.services[service].base_url

    async def audit_rows_after(self, last_id: int) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch("SELECT id, actor, actor_role, unit_id, patient_key, action, outcome "
                                    "FROM platform.audit_log WHERE id > $1 ORDER BY id", last_id)
        finally:
            await conn.close()

    async def last_audit_id(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval("SELECT coalesce(max(id), 0) FROM platform.audit_log")
        finally:
            await conn.close()


async def seed_two_units(deployment: Deployment, producer) -> None:
    """PATIENT_A listed at UNIT_A, PATIENT_B at UNIT_B, with visits; routing and a care gap per unit."""
    records = []
    for patient, unit in ((PATIENT_A, UNIT_A), (PATIENT_B, UNIT_B)):
        records.append(listing(patient, unit))
        records += [visit(patient, f"seed-{patient[-6:]}-{n}", DOCTOR_1, f"2026-0{n}-02T09:00:00Z", unit)
                    for n in (1, 2, 3)]
    await publish_many(producer, records, deployment.prefix)

    from services.notifier.service_layer.routing import build_routing, set_routing

    pool = await asyncpg.create_pool(deployment.dsn, min_size=1, max_size=2)
    try:
        now = datetime.now(timezone.utc)
        for patient, unit in ((PATIENT_A, UNIT_A), (PATIENT_B, UNIT_B)):
            await set_routing(pool, build_routing(unit, f"Vårdcentral {unit[-4:]}", email_to=["vc@example.se"],
                                                  mode="daily_digest"), "seed", now)
            await pool.execute(
                "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
                "VALUES ($1, $2, $3, 'never_assigned', 5, false, $4)", uuid.uuid4(), patient, unit,
                now - timedelta(days=20))
    finally:
        await pool.close()

    admin = bearer(token(deployment.settings, _admin_role()))
    async with httpx.AsyncClient(timeout=5) as client:
        async def both_indexed() -> bool:
            for p in (PATIENT_A, PATIENT_B):
                r = await client.get(f"{deployment.url('continuity')}/patients/{p}/continuity", headers=admin)
                if r.status_code != 200 or r.json()["doctor"]["visits"] != 3:
                    return False
            return True

        await wait_until(both_indexed, timeout_s=60, what="the seeded patients in the continuity worker")


def _admin_role():
    from flk.security.tokens import Role

    return Role.LISTING_ADMIN


@pytest.fixture(scope="module")
async def deployment(infra, tmp_path_factory) -> AsyncIterator[Deployment]:
    """Every service that exists, running, seeded with PATIENT_A at UNIT_A and PATIENT_B at UNIT_B."""
    from flk.events.admin import ensure_topics
    from flk.events.producer import new_producer

    bootstrap = infra.kafka_bootstrap
    prefix = f"t{uuid.uuid4().hex[:10]}."
    await ensure_topics(bootstrap, prefix=prefix)
    workdir = tmp_path_factory.mktemp("deployment")
    async with migrated_db(infra) as dsn:
        d = Deployment(platform_settings(bootstrap, prefix, dsn), dsn, prefix)
        d.services["continuity"] = continuity_service(bootstrap, prefix, dsn, workdir)
        d.services["notifier"] = notifier_service(bootstrap, prefix, dsn, workdir)
        try:
            for s in d.services.values():
                s.start()
            for s in d.services.values():
                await s.ready()
            producer = new_producer(bootstrap, client_id="reliability-seed")
            await producer.start()
            try:
                await seed_two_units(d, producer)
            finally:
                await producer.stop()
            yield d
        finally:
            for s in d.services.values():
                s.stop()
