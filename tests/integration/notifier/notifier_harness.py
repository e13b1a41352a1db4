"""The notifier's integration harness: a real SMTP server (aiosmtpd), a local HTTP server standing
in for the Teams Workflows webhook (aiohttp), the real broker and PostgreSQL, and the notifier
runtime wired with short intervals and a movable clock."""
from __future__ import annotations

import email
import email.policy
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp import web

from flk.api import open_pool
from flk.events.envelope import make_record
from flk.events.producer import publish
from flk.settings import PlatformSettings
from services.notifier.adapters.clock import SystemClock
from services.notifier.adapters.metrics import PrometheusProbe
from services.notifier.adapters.secrets import EnvSecretStore, env_var_for
from services.notifier.bootstrap import NotifierRuntime, build_runtime
from services.notifier.service_layer.routing import build_routing, set_routing
from services.notifier.settings import NotifierSettings
from tests.support.ports import free_port  # noqa: F401 - the harness's users import it from here
from tests.support.waiting import wait_until  # noqa: F401 - the harness's users import it from here

STOCKHOLM = ZoneInfo("Europe/Stockholm")
#: a weekday, mid-morning local time: outside quiet hours
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=STOCKHOLM)
TEAMS_SECRET_REF = "teams-vca1"
JWT_KEY = "notifier-integration-secret-0123456789abcdef"


# ---- SMTP ------------------------------------------------------------------------------------


@dataclass
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    at: float

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def text(self) -> str:
        """Every part decoded (headers and bodies), for content assertions."""
        msg = self.message
        parts = [str(msg["Subject"]), str(msg["To"])]
        for part in msg.walk():
            if not part.is_multipart():
                parts.append(part.get_content())
        return "\n".join(parts)


class SmtpSink:
    """aiosmtpd on a concrete port (port 0 fails its self-check). Can start later (SMTP down)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[ReceivedEmail] = []
        self._lock = threading.Lock()
        self.controller = None

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler hook
        with self._lock:
            self.received.append(ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos),
                                               bytes(envelope.original_content or envelope.content), time.monotonic()))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# ---- Teams -----------------------------------------------------------------------------------


@dataclass
class TeamsRequest:
    at: float
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class TeamsSink:
    """A local HTTP server receiving the Workflows webhook POSTs; answers are scriptable."""

    port: int
    requests: list[TeamsRequest] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # answers, then 202
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/workflows/{uuid.uuid4().hex}/triggers/manual/run"

    @property
    def accepted(self) -> list[TeamsRequest]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status, headers = self.script.pop(0) if self.script else (202, {})
        self.requests.append(TeamsRequest(time.monotonic(), dict(request.headers), body, status))
        return web.Response(status=status, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/workflows/{flow}/triggers/manual/run", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpSink]:
    """An SMTP sink on a port where nothing listens yet: `start()` it when the test wants."""
    sink = SmtpSink(free_port())
    yield sink
    sink.stop()


@pytest.fixture
async def teams_sink() -> AsyncIterator[TeamsSink]:
    sink = TeamsSink(free_port())
    await sink.start()
    yield sink
    await sink.stop()


# ---- the notifier --------------------------------------------------------------------------------


@dataclass
class Harness:
    settings: NotifierSettings
    dsn: str
    pool: Any
    producer: Any
    clock: SystemClock
    secrets: dict[str, str]
    probe: PrometheusProbe
    runtime: NotifierRuntime | None = None

    async def start(self, **overrides: Any) -> NotifierRuntime:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        self.runtime = build_runtime(settings, self.pool, self.producer, clock=self.clock,
                                     secrets=EnvSecretStore(self.secrets), probe=self.probe)
        await self.runtime.start()
        return self.runtime

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
            closer = getattr(self.runtime.teams, "aclose", None)
            if closer:
                await closer()
            self.runtime = None

    async def route(self, unit_id: str, *, email_to=("vardcentral-a@example.se",), teams: bool = True,
                    mode: str = "immediate", quiet_hours: str | None = None, **kwargs: Any) -> None:
        routing = build_routing(unit_id, "Vårdcentralen Centrum", email_to=list(email_to),
                                teams_webhook_secret_ref=TEAMS_SECRET_REF if teams else None, mode=mode,
                                quiet_hours=quiet_hours, **kwargs)
        await set_routing(self.pool, routing, "test", self.clock.now())

    async def publish(self, event_type: str, data: dict, *, event_id: str | None = None) -> str:
        record = make_record(event_type, data, source="urn:test", event_id=event_id)
        await publish(self.producer, record, self.settings.platform.topic_prefix)
        return record.event_id

    def advance(self, delta: timedelta) -> None:
        self.clock.advance(delta)
        if self.runtime is not None:
            self.runtime.poke()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.pool.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.pool.fetchval(sql, *args)


@pytest.fixture
async def notifier(migrated_database, kafka_bootstrap, topic_prefix, producer, teams_sink,
                   request) -> AsyncIterator[Harness]:
    smtp = request.getfixturevalue("smtp_down" if "smtp_down" in request.fixturenames else "smtp_sink")
    settings = NotifierSettings(
        platform=PlatformSettings(database_url=migrated_database, kafka_bootstrap=kafka_bootstrap,
                                  topic_prefix=topic_prefix, jwt_verify_key=JWT_KEY),
        grace_days=14,
        worklist_base_url="https://flk.example.se/worklist",
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_tls="none", smtp_timeout_s=5,
        teams_timeout_s=5,
        tick_interval_s=0.2, relay_interval_s=0.2, plan_interval_s=1.0, immediate_batch_window_s=0.1,
        delivery_poll_s=0.1, metrics_refresh_s=0.5, retry_base_s=0.2, retry_cap_s=2.0,
    )
    pool = await open_pool(settings.platform)
    clock = SystemClock()
    clock.set(T0)
    harness = Harness(settings, migrated_database, pool, producer, clock,
                      {env_var_for(TEAMS_SECRET_REF): teams_sink.url}, PrometheusProbe())
    try:
        yield harness
    finally:
        await harness.stop()
        await pool.close()


# ---- event builders --------------------------------------------------------------------------------


def listing_started(patient_key: str, unit_id: str, started_on: date, listing_id: str | None = None) -> dict:
    return {
        "listing_id": listing_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"listing|{patient_key}|{unit_id}")),
        "patient_key": patient_key, "care_unit_id": unit_id, "started_on": started_on.isoformat(),
        "responsibility_from": (started_on + timedelta(days=1)).isoformat(), "origin": "active_choice",
        "initiated_by": "person",
    }


def risk_assessed(patient_key: str, rub: int, computed_at: datetime) -> dict:
    return {
        "assessment_id": f"acg-{uuid.uuid5(uuid.NAMESPACE_URL, patient_key + computed_at.isoformat()).hex[:12]}",
        "patient_key": patient_key, "rub": rub, "acg_version": "12.1", "lookback_months": 18,
        "computed_at": computed_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
    }


def flk_assigned(patient_key: str, unit_id: str, practitioner_id: str, assigned_on: date) -> dict:
    return {
        "assignment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"assignment|{patient_key}|{practitioner_id}")),
        "patient_key": patient_key, "care_unit_id": unit_id, "list_id": f"list-{practitioner_id}",
        "list_kind": "doctor", "practitioner_id": practitioner_id, "coordinating": True,
        "assigned_on": assigned_on.isoformat(),
    }
