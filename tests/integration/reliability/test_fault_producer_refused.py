"""The continuity worker when the broker refuses what it publishes (as after a broker restart): the
batch's transaction fails and is aborted, nothing is committed meanwhile, the partition is restored
from its changelog and replayed (a new transactional producer), and the indices are published once
the broker takes them again, each event once (docs/adr/0008)."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import reliability_support  # noqa: F401 - puts the continuity tests on sys.path first
from flk.events.admin import delete_topics_with_prefix
from flk.events.envelope import read_record
from flk.events.registry import registry
from tests.conftest import consume_all
from tests.support.builders import a_patient_key

from continuity_stream import DOCTOR_2, eventually, listing, publish, running_worker, service_settings, visit

INDICES_TOPIC = registry().topic_for("continuity.indices_changed.v1").name


async def set_max_message_bytes(admin: AIOKafkaAdminClient, topic: str, limit: int) -> None:
    """Set the topic's limit and wait until the broker reports it."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    for _ in range(50):
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"max.message.bytes": str(limit)})])
        await asyncio.sleep(0.2)
        described = (await admin.describe_configs([resource]))[0].resources[0][4]
        if any(c[0] == "max.message.bytes" and c[1] == str(limit) for c in described):
            return
    raise AssertionError(f"the broker did not take max.message.bytes={limit} for {topic}")


@pytest.fixture
async def refusing_prefix(kafka_bootstrap):
    """Every registry topic (and DLQ) under a unique prefix, created bare (the broker kept ignoring a
    later AlterConfigs on topics created with configs); the indices topic refuses any indices event."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(prefix + name, spec.partitions, 1) for spec in registry().topics
                                   for name in (spec.name, spec.dlq)])
        await set_max_message_bytes(admin, prefix + INDICES_TOPIC, 100)
        yield prefix, admin
    finally:
        await admin.close()
        await delete_topics_with_prefix(kafka_bootstrap, prefix)


async def test_the_worker_publishes_its_indices_once_the_broker_takes_them_again_committing_nothing_before(
        kafka_bootstrap, refusing_prefix, producer):
    prefix, admin = refusing_prefix
    patient = a_patient_key(4711)
    settings = service_settings(kafka_bootstrap, prefix)
    async with running_worker(settings) as worker:
        await publish(producer, prefix, listing(patient), visit(patient, "v1"), visit(patient, "v2", DOCTOR_2))
        await eventually(lambda: worker.failed_transactions >= 1, timeout_s=20)
        assert worker.processed_events == 0  # refused: the batch is not committed, it is replayed

        await set_max_message_bytes(admin, prefix + INDICES_TOPIC, 1_000_000)
        await eventually(lambda: worker.processed_events >= 3, timeout_s=20)

    records = await consume_all(kafka_bootstrap, prefix + INDICES_TOPIC, 3, timeout_s=3)
    events = [read_record(INDICES_TOPIC, r.key, r.value, r.headers) for r in records]
    assert events, "the indices were published after the broker took them again"
    assert len({e.id for e in events}) == len(events)  # none twice
    assert events[-1].data["total"]["visits"] == 2
