"""The listing service's integration harness: the real app (`create_app`) with its Kafka consumers
and outbox relay on the real broker (a unique topic prefix) and a fresh migrated PostgreSQL.

Reference data (units, roles, persons) goes in through the fact handlers — the code path the
Kafka fact consumer runs — so a test reads as "given the region's register …".
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from flk.events.envelope import Envelope, make_record, read_record
from flk.events.producer import publish
from flk.security.tokens import Role, issue_token
from flk.settings import PlatformSettings
from services.listing.entrypoints.api import create_app
from services.listing.service_layer.dispatch import handle_message
from services.listing.service_layer.handlers import Message
from services.listing.settings import ListingSettings
from tests.support.builders import a_patient_key

JWT_KEY = "listing-integration-secret-0123456789abcdef"
REGION = "19"
UNIT_A = "SE2321000016-VCA1"
UNIT_A_NAME = "Vårdcentralen Norberg"
UNIT_B = "SE2321000016-VCB2"
UNIT_B_NAME = "Vårdcentralen Sala"
DOCTOR_1 = "SE2321000016-L001"
DOCTOR_B = "SE2321000016-L002"
LOCUM = "SE2321000016-L900"
ROLE_1 = "role-l001"
ROLE_B = "role-l002"
FICTIVE_A = "F-VCA1-X"
STAFF_A = "SE2321000016-U001"
TODAY = datetime.now(ZoneInfo("Europe/Stockholm")).date()
START = TODAY - timedelta(days=60)


def rfc3339(at: datetime | None = None) -> str:
    return (at or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")


def unit_register(unit: str, name: str, **overrides: Any) -> dict:
    data = {"care_unit_id": unit, "name": name, "region_code": REGION, "contract_from": START.isoformat(),
            "contract_to": None, "listing_limit": None, "verksamhetschef_id": None,
            "fictive_lists": [{"list_id": f"F-{unit.split('-')[1]}-X", "name": f"{name} Dr X"}],
            "recorded_at": rfc3339()}
    data.update(overrides)
    return data


def role_started(role_id: str, practitioner: str, unit: str, **overrides: Any) -> dict:
    data = {"role_id": role_id, "practitioner_id": practitioner, "care_unit_id": unit, "profession": "läkare",
            "legitimerad": True, "employment_type": "tillsvidare", "specialty": "allmanmedicin", "fte": 1.0,
            "valid_from": START.isoformat()}
    data.update(overrides)
    return data


def person(key: str, **overrides: Any) -> dict:
    data = {"patient_key": key, "id_kind": "personnummer", "birth_date": "1950-01-01", "region_code": REGION,
            "protected_identity": False, "status": "folkbokford", "updated_at": rfc3339()}
    data.update(overrides)
    return data


def command(**fields: Any) -> dict:
    data = {"command_id": str(uuid.uuid4()), "requested_at": rfc3339(), "channel": "ehr"}
    data.update(fields)
    return data


def list_request(key: str, unit: str = UNIT_A, on: date | None = START, **overrides: Any) -> dict:
    data = command(patient_key=key, care_unit_id=unit, origin="active_choice", initiated_by="person")
    if on is not None:
        data["effective_date"] = on.isoformat()
    data.update(overrides)
    return data


def assign_flk(key: str, unit: str = UNIT_A, on: date | None = START + timedelta(days=1), **overrides: Any) -> dict:
    data = command(patient_key=key, care_unit_id=unit)
    if on is not None:
        data["effective_date"] = on.isoformat()
    data.update(overrides)
    return data


@dataclass
class Listing:
    """The running service and what a test needs to talk to it."""

    settings: ListingSettings
    dsn: str
    client: httpx.AsyncClient
    app: Any
    producer: Any
    bootstrap: str
    prefix: str
    _serial: list[int] = field(default_factory=lambda: [1000])

    # ---- tokens -----------------------------------------------------------------------------
    def token(self, role: Role = Role.CLINICIAN, units: tuple[str, ...] = (UNIT_A,), patient_key: str | None = None,
              subject: str = STAFF_A) -> dict[str, str]:
        value = issue_token(self.settings.platform, subject, role, list(units), patient_key)
        return {"Authorization": f"Bearer {value}"}

    def new_patient_key(self) -> str:
        self._serial[0] += 1
        return a_patient_key(self._serial[0])

    # ---- in: facts, commands ------------------------------------------------------------------
    async def fact(self, event_type: str, data: dict) -> None:
        """Handle a fact as the fact consumer does (same dispatch, inbox key = an event id)."""
        msg = Message(str(uuid.uuid4()), event_type, data, datetime.now(timezone.utc))
        await handle_message(msg, self.app.state.runtime.deps)

    async def given_region(self) -> None:
        await self.fact("care_unit.contracted.v1", unit_register(UNIT_A, UNIT_A_NAME))
        await self.fact("care_unit.contracted.v1", unit_register(UNIT_B, UNIT_B_NAME))
        await self.fact("practitioner_role.started.v1", role_started(ROLE_1, DOCTOR_1, UNIT_A))
        await self.fact("practitioner_role.started.v1", role_started(ROLE_B, DOCTOR_B, UNIT_B))

    async def given_person(self, **overrides: Any) -> str:
        key = overrides.pop("patient_key", None) or self.new_patient_key()
        await self.fact("person.registered.v1", person(key, **overrides))
        return key

    async def post(self, command_type: str, data: dict, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(f"/commands/{command_type}", json=data,
                                      headers=headers or self.token(Role.LISTING_ADMIN, ()))

    async def publish(self, event_type: str, data: dict, event_id: str | None = None) -> None:
        await publish(self.producer, make_record(event_type, data, source="urn:test", event_id=event_id), self.prefix)

    # ---- out: rows, events --------------------------------------------------------------------
    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def eventually(self, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
        """Poll an async check until it returns something truthy (or fail with its last value)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await check()
            if value or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.1)

    async def published(self, event_type_topic: str, until: Callable[[list[Envelope]], bool],
                        timeout_s: float = 20.0) -> list[Envelope]:
        """Every event on the registry topic carrying ``event_type_topic`` (read from the start)."""
        from flk.events.registry import registry

        topic = registry().topic_for(event_type_topic).name
        return await self._read(topic, lambda r: read_record(topic, r.key, r.value, r.headers), until, timeout_s)

    async def dead_letters(self, event_type_topic: str, until: Callable[[list], bool] = bool,
                           timeout_s: float = 20.0) -> list:
        """The raw records on the dead-letter topic of the topic carrying ``event_type_topic``."""
        from flk.events.registry import registry

        return await self._read(registry().topic_for(event_type_topic).dlq, lambda r: r, until, timeout_s)

    async def _read(self, topic: str, decode: Callable, until: Callable[[list], bool], timeout_s: float) -> list:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.prefix + topic, bootstrap_servers=self.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
        await consumer.start()
        found: list = []
        try:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while asyncio.get_running_loop().time() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found += [decode(r) for r in records]
                if until(found):
                    break
        finally:
            await consumer.stop()
        return found


@asynccontextmanager
async def running_listing(database: str, topic_prefix: str, kafka_bootstrap: str, producer,
                          **settings_overrides: Any) -> AsyncIterator[Listing]:
    """The service (API, consumers, relay, loops) on the given database and topics."""
    settings = ListingSettings(
        platform=PlatformSettings(database_url=database, topic_prefix=topic_prefix,
                                  kafka_bootstrap=kafka_bootstrap, jwt_verify_key=JWT_KEY, environment="test"),
        relay_interval_s=0.2, pool_size=8, **settings_overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://listing") as client:
            yield Listing(settings, database, client, app, producer, kafka_bootstrap, topic_prefix)


@pytest.fixture
async def listing(migrated_database: str, topic_prefix: str, kafka_bootstrap: str, producer) -> AsyncIterator[Listing]:
    async with running_listing(migrated_database, topic_prefix, kafka_bootstrap, producer) as service:
        yield service
