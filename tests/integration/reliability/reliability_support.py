"""What the reliability tests share: the services as real processes, forged tokens, DLQ reads.

Each service runs as its own process with its real command (`flk continuity worker`,
`flk notifier run`, `flk listing run` when it exists), on free ports, with its log captured to
a file (the leak scan reads it). Tests talk to them over HTTP and Kafka only.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import jwt

from flk.events.registry import registry
from flk.security.tokens import Role, issue_token
from flk.settings import PlatformSettings
from tests.support.ports import free_port  # noqa: F401 - the tests import it from here
from tests.support.waiting import wait_until as _wait_until

JWT_SECRET = "reliability-integration-secret-0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]
# the continuity tests import their helpers by bare name (`from continuity_stream import ...`); we reuse them
_CONTINUITY_TESTS = str(REPO / "tests" / "integration" / "continuity")
if _CONTINUITY_TESTS not in sys.path:
    sys.path.append(_CONTINUITY_TESTS)


def platform_settings(bootstrap: str, prefix: str, dsn: str | None = None) -> PlatformSettings:
    values = dict(kafka_bootstrap=bootstrap, topic_prefix=prefix, jwt_verify_key=JWT_SECRET, environment="test")
    if dsn:
        values["database_url"] = dsn
    return PlatformSettings(**values)


def platform_env(bootstrap: str, prefix: str, dsn: str) -> dict[str, str]:
    return {"FLK_KAFKA_BOOTSTRAP": bootstrap, "FLK_TOPIC_PREFIX": prefix, "FLK_DATABASE_URL": dsn,
            "FLK_JWT_VERIFY_KEY": JWT_SECRET, "FLK_ENVIRONMENT": "test", "PYTHONUNBUFFERED": "1"}


# ---- services as processes ----------------------------------------------------------------------


@dataclass
class ServiceProcess:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    base_url: str | None = None  # its HTTP API
    metrics_url: str | None = None
    ready_path: str = "/healthz"
    process: subprocess.Popen | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)

    def start(self) -> "ServiceProcess":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "tools.cli", *self.args], cwd=REPO,
                                        env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        self.starts += 1
        return self

    async def ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the HTTP API answers (or the metrics endpoint, for an API-less process)."""
        url = (self.base_url + self.ready_path) if self.base_url else self.metrics_url
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
                try:
                    if (await client.get(url)).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not ready within {timeout_s}s:\n{self.log()[-3000:]}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        if self.alive:
            os.kill(self.process.pid, signal.SIGKILL)
            self.exits.append(self.process.wait(timeout=10))

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL after the timeout); the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        self.exits.append(code)
        return code

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def continuity_service(bootstrap: str, prefix: str, dsn: str, workdir: Path, *, as_of: str = "2026-03-15",
                       store: str = "memory", batch: int = 2000, **env: str) -> ServiceProcess:
    api, metrics = free_port(), free_port()
    environ = platform_env(bootstrap, prefix, dsn) | {
        "FLK_CONTINUITY_API_ENABLED": "true", "FLK_CONTINUITY_HTTP_PORT": str(api),
        "FLK_CONTINUITY_METRICS_PORT": str(metrics), "FLK_CONTINUITY_SNAPSHOT_ENABLED": "false",
        "FLK_CONTINUITY_SESSION_TIMEOUT_MS": "6000", "FLK_CONTINUITY_HEARTBEAT_INTERVAL_MS": "1000",
        "FLK_CONTINUITY_BATCH_MAX_RECORDS": str(batch),
    } | env
    args = ["continuity", "worker", "--store", store, "--data-dir", str(workdir / "continuity-data"),
            "--as-of", as_of]
    return ServiceProcess("continuity", args, environ, workdir / "continuity.log",
                          base_url=f"http://127.0.0.1:{api}", metrics_url=f"http://127.0.0.1:{metrics}/metrics")


def notifier_service(bootstrap: str, prefix: str, dsn: str, workdir: Path, *, smtp_port: int | None = None,
                     secrets: dict[str, str] | None = None, **env: str) -> ServiceProcess:
    port = free_port()
    environ = platform_env(bootstrap, prefix, dsn) | {
        "FLK_NOTIFIER_HTTP_PORT": str(port), "FLK_NOTIFIER_SMTP_HOST": "127.0.0.1",
        "FLK_NOTIFIER_SMTP_PORT": str(smtp_port or free_port()), "FLK_NOTIFIER_SMTP_TLS": "none",
        "FLK_NOTIFIER_SMTP_TIMEOUT_S": "5", "FLK_NOTIFIER_TEAMS_TIMEOUT_S": "5",
        "FLK_NOTIFIER_TICK_INTERVAL_S": "0.5", "FLK_NOTIFIER_RELAY_INTERVAL_S": "0.2",
        "FLK_NOTIFIER_PLAN_INTERVAL_S": "1", "FLK_NOTIFIER_IMMEDIATE_BATCH_WINDOW_S": "0.2",
        "FLK_NOTIFIER_DELIVERY_POLL_S": "0.2", "FLK_NOTIFIER_METRICS_REFRESH_S": "0.5",
        "FLK_NOTIFIER_RETRY_BASE_S": "0.3", "FLK_NOTIFIER_RETRY_CAP_S": "2",
        "FLK_NOTIFIER_WORKLIST_BASE_URL": "https://flk.example.se/worklist",
    } | (secrets or {}) | env
    return ServiceProcess("notifier", ["notifier", "run"], environ, workdir / "notifier.log",
                          base_url=f"http://127.0.0.1:{port}", metrics_url=f"http://127.0.0.1:{port}/metrics")


def listing_service(bootstrap: str, prefix: str, dsn: str, workdir: Path, **env: str) -> ServiceProcess:
    port = free_port()
    environ = platform_env(bootstrap, prefix, dsn) | {"FLK_LISTING_HTTP_PORT": str(port), "FLK_LISTING_HTTP_HOST": "127.0.0.1",
                                                      "FLK_LISTING_RELAY_INTERVAL_S": "0.2"} | env
    return ServiceProcess("listing", ["listing", "run"], environ, workdir / "listing.log",
                          base_url=f"http://127.0.0.1:{port}", metrics_url=f"http://127.0.0.1:{port}/metrics")


# ---- tokens ----------------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(settings: PlatformSettings, role: Role, units: list[str] | None = None, *, subject: str | None = None,
          patient_key: str | None = None) -> str:
    return issue_token(settings, subject or f"SE2321000016-T{role.value[:4].upper()}", role, units,
                       patient_key=patient_key)


def _claims(settings: PlatformSettings, **overrides: object) -> dict:
    now = datetime.now(timezone.utc)
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "SE2321000016-FORGED",
              "iat": int(now.timestamp()), "exp": int((now + timedelta(hours=1)).timestamp()),
              "role": Role.LISTING_ADMIN.value, "units": []}
    claims.update(overrides)
    return claims


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(settings: PlatformSettings) -> dict[str, str]:
    """Tokens every API must refuse with 401 (each would otherwise grant region-wide reads)."""
    key = settings.jwt_verify_key.get_secret_value()
    past = datetime.now(timezone.utc) - timedelta(hours=3)
    return {
        "expired": issue_token(settings, "SE2321000016-OLD", Role.LISTING_ADMIN, [], ttl=timedelta(hours=1), now=past),
        "unsigned_alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings))}.",
        "wrongly_signed": jwt.encode(_claims(settings), "not-the-service-secret-0123456789abcdef", algorithm="HS256"),
        "foreign_issuer": jwt.encode(_claims(settings, iss="https://login.evil.example"), key, algorithm="HS256"),
        "wrong_audience": jwt.encode(_claims(settings, aud="some-other-api"), key, algorithm="HS256"),
        "algorithm_not_allowed": _quietly(lambda: jwt.encode(_claims(settings), key, algorithm="HS512")),
        "tampered_payload": _tamper(issue_token(settings, "SE2321000016-U9", Role.CLINICIAN, ["SE2321000016-VCB2"])),
        "unknown_role": jwt.encode(_claims(settings, role="superuser"), key, algorithm="HS256"),
        "patient_without_key": jwt.encode(_claims(settings, role="patient"), key, algorithm="HS256"),
        "not_a_jwt": "definitely-not-a-token",
    }


def _quietly(make):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the key is short for HS512: it is meant to be refused
        return make()


def _tamper(token_text: str) -> str:
    """Same signature, payload changed to a region-wide role."""
    head, payload, sig = token_text.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"], claims["units"] = Role.LISTING_ADMIN.value, []
    return f"{head}.{_b64(claims)}.{sig}"


# ---- Kafka: dead letters and offsets -------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterSeen:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def reason(self) -> str:
        return self.headers.get("dlq_reason", b"").decode()

    @property
    def consumer(self) -> str:
        return self.headers.get("dlq_consumer", b"").decode()

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.headers["dlq_source_topic"].decode(), int(self.headers["dlq_source_partition"]),
                int(self.headers["dlq_source_offset"]))


async def read_topics(bootstrap: str, topics: list[str]) -> list:
    """Every record now on these topics (from the start to the current end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=16 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    records = []
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t)
                                                               or await _partitions(consumer, t))]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                break
            for part in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def _partitions(consumer, topic: str) -> set[int]:
    parts = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - aiokafka has no public async lookup
    return parts.partitions_for_topic(topic) or set()


async def dead_letters(bootstrap: str, prefix: str) -> list[DeadLetterSeen]:
    names = [prefix + spec.dlq for spec in registry().topics]
    return [DeadLetterSeen(r.topic, r.key, r.value, {k: v for k, v in r.headers})
            for r in await read_topics(bootstrap, names)]


async def committed_vs_end(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int]:
    """(committed, end) summed over the topics' partitions for a consumer group."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in await _partitions(consumer, t)]
        ends = await consumer.end_offsets(tps)
        committed = 0
        for tp in tps:
            committed += await consumer.committed(tp) or 0
        return committed, sum(ends.values())
    finally:
        await consumer.stop()


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> None:
    """Delete a test's topics: tens of thousands of leftover partitions make a broker restart take minutes."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    except Exception:  # noqa: BLE001 - clean-up is best effort
        pass
    finally:
        await admin.close()


async def wait_until(condition, timeout_s: float = 30.0, interval_s: float = 0.2, what: str = "condition"):
    """The shared poll (tests/support/waiting.py) with this folder's longer defaults."""
    return await _wait_until(condition, timeout_s, interval_s, what)
