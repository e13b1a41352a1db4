"""Shared test fixtures: the real Kafka broker and PostgreSQL that `flk infra up` runs.

Session fixtures start the infrastructure (or reuse it when it already runs: `up` is
idempotent). Each test gets isolation of its own: a unique topic prefix with every registry
topic created under it, and, where needed, a fresh database with the migrations applied.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from tools.infra.settings import InfraSettings


@pytest.fixture(scope="session")
def infra_settings() -> InfraSettings:
    return InfraSettings()


@pytest.fixture(scope="session")
def infra(infra_settings: InfraSettings) -> InfraSettings:
    """Kafka and PostgreSQL, started by the project's own code if they are not running."""
    from tools.infra.kafka import Kafka
    from tools.infra.postgres import Postgres

    if os.environ.get("FLK_TEST_SKIP_INFRA_UP") != "1":
        Kafka(infra_settings).up()
        Postgres(infra_settings).up()
    return infra_settings


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: InfraSettings) -> str:
    return infra.kafka_bootstrap


@pytest.fixture
async def topic_prefix(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A unique prefix; every registry topic (and its DLQ) exists under it. Deleted afterwards."""
    from flk.events.admin import delete_topics_with_prefix, ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    await ensure_topics(kafka_bootstrap, prefix=prefix)
    yield prefix
    try:
        await delete_topics_with_prefix(kafka_bootstrap, prefix)
    except Exception:  # noqa: BLE001 - best effort: a broker hiccup must not fail the test
        pass


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[object]:
    from flk.events.producer import new_producer

    p = new_producer(kafka_bootstrap, client_id="tests")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def fresh_database(infra: InfraSettings) -> AsyncIterator[str]:
    """An empty database owned by the app role; its DSN. Dropped afterwards."""
    import asyncpg

    name = f"flk_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{infra.postgres_app_user}"')
    finally:
        await admin.close()
    yield infra.dsn("app", database=name)
    admin = await asyncpg.connect(infra.dsn("admin", database="postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def migrated_database(fresh_database: str) -> str:
    from tools.migrations import migrate

    await migrate(fresh_database)
    return fresh_database


@pytest.fixture(scope="session")
def identity_provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Keycloak with the realm file's realms (tests/support/keycloak.py), once per session; stopped
    at its end. Its start time is printed in the session's summary (CI's log shows it)."""
    from tests.support.keycloak import start_local_provider

    provider = start_local_provider(tmp_path_factory.mktemp("keycloak"))
    line = f"keycloak: {provider.start_note}; ready with its realms in {provider.start_s:.1f}s"
    request.config.stash[KEYCLOAK_START] = line  # printed in the session's summary
    yield provider
    if provider.owned:
        provider.keycloak.down()


KEYCLOAK_START = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001
    if KEYCLOAK_START in config.stash:
        terminalreporter.write_line(config.stash[KEYCLOAK_START])


async def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """Read `expected` records from the start of `topic` (any partition), or fail after the timeout."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries exactly one tier marker (its folder's), so tiers can be selected."""
    for item in items:
        path = str(item.fspath)
        for tier in ("unit", "integration", "e2e"):
            if f"{os.sep}tests{os.sep}{tier}{os.sep}" in path and item.get_closest_marker(tier) is None:
                item.add_marker(getattr(pytest.mark, tier))
