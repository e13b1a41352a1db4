"""`ensure_topics` brings existing topics to the registry's retention (a dead-letter topic created
when dead letters were kept for ever gets its 30 days), and leaves topics that have it alone."""
from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from flk.events.admin import delete_topics_with_prefix, ensure_topics
from flk.events.registry import registry


async def _retention(admin, name: str) -> str:
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name,
                                                             configs={"retention.ms": None})])
    entries = responses[0].to_object()["resources"][0]["config_entries"]
    return {e["config_names"]: e["config_value"] for e in entries}["retention.ms"]


async def _eventually_retention(admin, name: str, expected: str, timeout_s: float = 15.0) -> str:
    """Topic metadata and configs reach the broker's cache shortly after the controller took them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            value = await _retention(admin, name)
        except (KeyError, IndexError):
            value = None
        if value == expected or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_an_old_dead_letter_topic_kept_for_ever_gets_the_registrys_retention(kafka_bootstrap):
    prefix = f"t{uuid.uuid4().hex[:10]}."
    visits = registry().topic_for("visit.recorded.v1")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(prefix + visits.dlq, visits.partitions, 1,
                                            topic_configs={"retention.ms": "-1", "cleanup.policy": "delete"})])
        assert await _eventually_retention(admin, prefix + visits.dlq, "-1") == "-1"

        created = await ensure_topics(kafka_bootstrap, prefix=prefix)

        assert prefix + visits.dlq not in created and prefix + visits.name in created
        expected = str(visits.dlq_retention_ms)
        assert await _eventually_retention(admin, prefix + visits.dlq, expected) == expected
        assert await _retention(admin, prefix + visits.name) == str(visits.retention_ms)  # created as the registry says
        assert await ensure_topics(kafka_bootstrap, prefix=prefix) == []
    finally:
        await admin.close()
        await delete_topics_with_prefix(kafka_bootstrap, prefix)
