"""Create the registry's topics (and their dead-letter topics) on a broker."""
from __future__ import annotations

import asyncio

from flk.events.registry import TopicRegistry, TopicSpec, registry


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    return {"retention.ms": str(spec.retention_ms), "cleanup.policy": "delete"}


async def ensure_topics(bootstrap: str, reg: TopicRegistry | None = None, prefix: str = "") -> list[str]:
    """Create missing topics; return the names created. Existing topics are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    reg = reg or registry()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted: list[NewTopic] = []
        for spec in reg.topics:
            for name in (spec.name, spec.dlq):
                full = prefix + name
                if full not in existing:
                    wanted.append(NewTopic(full, spec.partitions, 1, topic_configs=topic_configs(spec)))
        if wanted:
            await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap: str) -> list[str]:
    return asyncio.run(ensure_topics(bootstrap))
