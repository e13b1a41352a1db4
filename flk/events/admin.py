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
            await _wait_for_leaders(admin, [t.name for t in wanted])
        return [t.name for t in wanted]
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap: str) -> list[str]:
    return asyncio.run(ensure_topics(bootstrap))


async def _wait_for_leaders(admin, names: list[str], timeout_s: float = 15.0) -> None:
    """New topics are usable once every partition has a leader (else the first produce errs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        described = await admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
               for t in described):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topics without a leader after {timeout_s:.0f}s: {', '.join(names)}")


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a test's isolation prefix; never empty).

    Tests create ~24 topics per prefix; left behind, they pile up until the broker runs out of
    file descriptors and memory maps.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    if not prefix:
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
