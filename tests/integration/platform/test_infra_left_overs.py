"""`flk infra prune` on the real broker and database: left-overs are found and deleted, the
region's own stay. (Only this test's own left-overs are deleted: a developer's are not touched.)"""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from flk.events.admin import ensure_topics
from flk.events.registry import registry
from tools.infra.prune import PruneResult, delete_left_overs, find_left_overs, region_topics


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _topics_once_gone(bootstrap: str, prefix: str, timeout_s: float = 30.0) -> set[str]:
    """Deletion is asynchronous in the broker: the topics leave the metadata shortly after."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        names = await _topics(bootstrap)
        if not any(t.startswith(prefix) for t in names) or asyncio.get_running_loop().time() > deadline:
            return names
        await asyncio.sleep(0.2)


async def test_left_over_topics_and_databases_are_found_and_deleted_and_the_regions_stay(infra):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    kept_run = uuid.uuid4().hex[:8]
    await ensure_topics(infra.kafka_bootstrap, prefix=prefix)
    await ensure_topics(infra.kafka_bootstrap, prefix=f"run{kept_run}.")
    left_db, kept_db = f"flk_test_{uuid.uuid4().hex[:12]}", f"flk_run_{kept_run}"
    admin_db = await asyncpg.connect(infra.dsn("admin", database="postgres"))
    try:
        for name in (left_db, kept_db):
            await admin_db.execute(f'CREATE DATABASE "{name}"')

        found = await find_left_overs(infra, registry(), keep_runs=(kept_run,))

        ours = [t for t in found.topics if t.startswith(prefix)]
        assert len(ours) == sum(len(spec.names) for spec in registry().topics)  # every topic and its dead-letter twin
        assert not region_topics(registry()) & set(found.topics)
        assert not any(t.startswith(f"run{kept_run}.") for t in found.topics)
        assert left_db in found.databases
        assert kept_db not in found.databases and infra.postgres_database not in found.databases

        await delete_left_overs(infra, PruneResult(topics=ours, databases=[left_db]))

        remaining = await _topics_once_gone(infra.kafka_bootstrap, prefix)
        assert not any(t.startswith(prefix) for t in remaining)
        assert region_topics(registry()) <= remaining
        databases = {r["datname"] for r in await admin_db.fetch("SELECT datname FROM pg_database")}
        assert left_db not in databases and kept_db in databases
    finally:
        await admin_db.execute(f'DROP DATABASE IF EXISTS "{kept_db}" WITH (FORCE)')
        await admin_db.execute(f'DROP DATABASE IF EXISTS "{left_db}" WITH (FORCE)')
        await admin_db.close()
        kept_topics = [t for t in await _topics(infra.kafka_bootstrap) if t.startswith(f"run{kept_run}.")]
        await delete_left_overs(infra, PruneResult(topics=kept_topics, databases=[]))
