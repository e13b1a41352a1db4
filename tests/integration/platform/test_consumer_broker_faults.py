"""The shared consumer when the broker refuses what it must send: the batch is read again after the
supervisor restarts the loop, so nothing in it is skipped."""
from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from flk.events.consumer import ConsumerSettings, EventConsumer
from flk.events.envelope import make_record
from flk.events.producer import publish_many
from flk.events.registry import registry
from flk.tasks import supervised_task
from tests.conftest import consume_all
from tests.support.builders import a_patient_key, a_visit
from tests.support.waiting import wait_until

VISITS = registry().topic_for("visit.recorded.v1").name
GARBAGE = b"{not json " + b"x" * 4000


@pytest.fixture
async def bare_prefix(kafka_bootstrap):
    """The visits topic and its DLQ under a unique prefix, created without topic configs (a broker
    ignores a later AlterConfigs on a topic created with some)."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(prefix + VISITS, 1, 1), NewTopic(prefix + VISITS + ".dlq", 1, 1)])
        yield prefix
        await admin.delete_topics([prefix + VISITS, prefix + VISITS + ".dlq"])
    finally:
        await admin.close()


async def set_max_message_bytes(bootstrap: str, topic: str, limit: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs={"max.message.bytes": str(limit)})])
    finally:
        await admin.close()


async def test_a_dead_letter_the_broker_refused_is_sent_again_and_the_rest_of_its_batch_still_handled(
        kafka_bootstrap, bare_prefix, producer):
    topic_prefix = bare_prefix
    dlq_topic = topic_prefix + VISITS + ".dlq"
    await set_max_message_bytes(kafka_bootstrap, dlq_topic, 1000)  # the dead letter cannot be written
    await asyncio.sleep(1.0)  # the new limit reaches the partition
    await producer.send_and_wait(topic_prefix + VISITS, value=GARBAGE, key=a_patient_key(1).encode())
    await publish_many(producer, [make_record("visit.recorded.v1", a_visit(patient_key=a_patient_key(1),
                                                                          visit_id="v-after"), source="/t")],
                       topic_prefix)
    handled: list[str] = []

    async def handle(envelope) -> None:
        handled.append(envelope.data["visit_id"])

    consumer = EventConsumer(
        ConsumerSettings(bootstrap=kafka_bootstrap, group_id=topic_prefix + "refused", topics=(VISITS,),
                         name="refused", topic_prefix=topic_prefix),
        handle=handle, dlq_producer=producer,
    )
    producer.backoff_initial_s = 0.05
    await consumer.start()
    loop = supervised_task("refused-consumer", consumer.run, logging.getLogger("test"), pause_s=0.1)
    try:
        # the loop failed on the refused dead letter and read the batch again (a new producer sends it)
        await wait_until(lambda: producer.replacements >= 1, 20, 0.05, "the dead letter to be sent again")
        await set_max_message_bytes(kafka_bootstrap, dlq_topic, 1_000_000)
        await wait_until(lambda: handled, 20, 0.05, "the valid visit behind it")
    finally:
        await consumer.stop()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

    assert handled == ["v-after"]
    letters = await consume_all(kafka_bootstrap, dlq_topic, 1, timeout_s=10)
    assert [r.value for r in letters] == [GARBAGE]
