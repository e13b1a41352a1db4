"""Create the registry's topics (and their dead-letter topics) on a broker."""
from __future__ import annotations

import asyncio
import logging

from flk.events.connection import PLAINTEXT, KafkaConnection
from flk.events.registry import TopicRegistry, TopicSpec, registry

log = logging.getLogger(__name__)


def topic_configs(spec: TopicSpec, dead_letters: bool = False,
                  retention_ms: dict[str, int] | None = None) -> dict[str, str]:
    """The configs the registry sets on a topic (``dead_letters``: on its ``.dlq`` twin).
    ``retention_ms``: a deployment's overrides of the registry's retention, by topic name
    (``FLK_TOPIC_RETENTION_MS``)."""
    if dead_letters:
        return {"retention.ms": str(spec.dlq_retention_ms), "cleanup.policy": "delete"}
    retention = (retention_ms or {}).get(spec.name, spec.retention_ms)
    return {"retention.ms": str(retention), "cleanup.policy": spec.cleanup_policy}


def registry_configs(reg: TopicRegistry, prefix: str = "",
                     retention_ms: dict[str, int] | None = None) -> dict[str, tuple[TopicSpec, dict[str, str]]]:
    """Every topic of the registry (and its dead-letter twin; a changelog has none) with the configs it
    must have."""
    unknown = set(retention_ms or {}) - {spec.name for spec in reg.topics}
    if unknown:
        raise ValueError(f"retention set for topics not in the registry: {', '.join(sorted(unknown))}")
    return {prefix + name: (spec, topic_configs(spec, dead_letters=name == spec.dlq, retention_ms=retention_ms))
            for spec in reg.topics for name in spec.names}


def configs_to_change(wanted: dict[str, str], current: dict[str, str]) -> dict[str, str] | None:
    """Pure: the configs to set on an existing topic (all of the registry's, since AlterConfigs
    replaces a topic's overrides), or None when the topic already has them."""
    return None if all(current.get(k) == v for k, v in wanted.items()) else dict(wanted)


async def ensure_topics(bootstrap: str, reg: TopicRegistry | None = None, prefix: str = "",
                        connection: KafkaConnection = PLAINTEXT,
                        retention_ms: dict[str, int] | None = None) -> list[str]:
    """Create missing topics; return the names created. Existing topics keep their partitions;
    their retention is brought to the registry's (see ``reconcile_topic_configs``)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    reg = reg or registry()
    configs = registry_configs(reg, prefix, retention_ms)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **connection.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [NewTopic(name, spec.partitions, 1, topic_configs=cfg)
                  for name, (spec, cfg) in configs.items() if name not in existing]
        if wanted:
            _raise_refusals(await admin.create_topics(wanted))
            await _wait_for_leaders(admin, [t.name for t in wanted])
        present = [name for name in configs if name in existing]
        if present:
            try:
                changed = await reconcile_topic_configs(admin, {name: configs[name][1] for name in present})
            except Exception as exc:  # noqa: BLE001 - e.g. no AlterConfigs right on a managed cluster
                log.warning("topic configs not brought to the registry's (%s: %s); the topics work as they are",
                            type(exc).__name__, exc)
            else:
                if changed:
                    log.info("topic configs set to the registry's on %d topic(s): %s", len(changed),
                             ", ".join(changed))
        return [t.name for t in wanted]
    finally:
        await admin.close()


def _raise_refusals(response) -> None:
    """aiokafka returns the broker's per-topic errors instead of raising them: a principal without the
    right to create topics (a cluster with ACLs) would otherwise wait for leaders that never come."""
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    for topic, code, *rest in response.topic_errors:
        if code and code != TopicAlreadyExistsError.errno:  # a concurrent creator won: fine
            message = rest[0] if rest and isinstance(rest[0], str) else ""
            raise for_code(code)(f"topic {topic} not created: {message or 'refused'}")


async def reconcile_topic_configs(admin, wanted: dict[str, dict[str, str]]) -> list[str]:
    """Set the registry's configs on existing topics that differ (e.g. a dead-letter topic created
    before it had a retention of its own); the names changed."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    keys = sorted({k for cfg in wanted.values() for k in cfg})
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs=dict.fromkeys(keys)) for name in wanted])
    current: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] == 0:
                current[resource["resource_name"]] = {
                    e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    changes = {name: change for name, cfg in wanted.items() if name in current
               and (change := configs_to_change(cfg, current[name])) is not None}
    if changes:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=cfg)
                                   for name, cfg in changes.items()])
    return sorted(changes)


def ensure_topics_sync(bootstrap: str, connection: KafkaConnection = PLAINTEXT,
                       retention_ms: dict[str, int] | None = None) -> list[str]:
    return asyncio.run(ensure_topics(bootstrap, connection=connection, retention_ms=retention_ms))


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
