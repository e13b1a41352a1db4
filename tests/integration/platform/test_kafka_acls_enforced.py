"""Least privilege on a shared cluster: a private broker with SASL and the KRaft StandardAuthorizer,
the ACLs `flk kafka acls` derives from the topic registry and the services' declarations applied by
the super user. Each service and external writer does its own job under its own principal, and
nothing else: a topic it does not own is not written, one it does not consume is not read, another
service's consumer group is not joined, no topic is created and no ACL changed."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from flk.events.acls import AclBinding, apply_acls, describe_acls
from flk.events.admin import ensure_topics
from flk.events.producer import init_transactions, new_producer, transactional_producer
from tests.support.ports import free_port  # a private broker's ports: never fixed ones (the ephemeral range)
from tests.support.acl_broker import AclBroker, prepare, start_acl_broker, stop_acl_broker

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
async def broker():
    acl_broker = await asyncio.to_thread(start_acl_broker, free_port(), free_port(), f"acl{uuid.uuid4().hex[:6]}.")
    try:
        await prepare(acl_broker)
        yield acl_broker
    finally:
        await asyncio.to_thread(stop_acl_broker, acl_broker)


async def _write(broker: AclBroker, who: str, topic: str) -> None:
    producer = new_producer(broker.bootstrap, f"acl-test-{who}", broker.connection(who))
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(broker.prefix + topic, b"{}", key=b"pk-test"), 30)
    finally:
        await producer.stop()


async def _read_one(broker: AclBroker, who: str, topic: str, group: str) -> bytes:
    consumer = AIOKafkaConsumer(broker.prefix + topic, bootstrap_servers=broker.bootstrap,
                                group_id=broker.prefix + group, auto_offset_reset="earliest",
                                enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                **broker.connection(who).client_options())
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        await consumer.commit()
        return record.value
    finally:
        await consumer.stop()


async def test_the_broker_enforces_exactly_the_rules_derived_from_the_registry(broker):
    assert await describe_acls(broker.bootstrap, broker.admin) == set(broker.rules)
    principals = {rule.principal for rule in broker.rules}
    assert {"User:listing", "User:continuity", "User:notifier", "User:ingest", "User:ehr", "User:region",
            "User:roster", "User:population-register", "User:acg", "User:municipality"} == principals


@pytest.mark.parametrize(("who", "own", "not_own"), [
    ("listing", "listing.events.v1", "continuity.indices.v1"),
    ("continuity", "continuity.indices.v1", "listing.events.v1"),
    ("notifier", "caregaps.events.v1", "listing.commands.v1"),
    ("ingest", "ehr.visits.v1", "listing.commands.v1"),  # the FHIR gateway writes visits as an EHR, no commands
    ("region", "region.care-units.v1", "ehr.visits.v1"),
    ("listing", "roster.practitioner-roles.v1.dlq", "ehr.visits.v1.dlq"),  # dead letters of what it consumes only
])
async def test_a_principal_writes_its_own_topics_and_is_refused_any_other(broker, who, own, not_own):
    await _write(broker, who, own)
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(broker, who, not_own)


async def test_a_service_reads_what_it_consumes_and_is_refused_a_topic_it_does_not_consume(broker):
    await _write(broker, "ehr", "ehr.visits.v1")
    assert await _read_one(broker, "continuity", "ehr.visits.v1", "continuity") == b"{}"
    with pytest.raises(TopicAuthorizationFailedError):  # the notifier has no business with raw visits
        await _read_one(broker, "notifier", "ehr.visits.v1", "notifier")
    with pytest.raises(TopicAuthorizationFailedError):  # nor the EHR with what listing decided
        await _read_one(broker, "ehr", "listing.events.v1", "notifier")


async def test_a_service_cannot_join_another_services_consumer_group(broker):
    await _write(broker, "listing", "listing.events.v1")
    assert await _read_one(broker, "notifier", "listing.events.v1", "notifier") == b"{}"
    with pytest.raises(GroupAuthorizationFailedError):  # listing.events.v1 it may read, but not as continuity
        await _read_one(broker, "notifier", "listing.events.v1", "continuity")


async def test_only_the_super_user_creates_topics_and_changes_acls(broker):
    with pytest.raises(TopicAuthorizationFailedError):
        await ensure_topics(broker.bootstrap, prefix=f"rogue{uuid.uuid4().hex[:4]}.",
                            connection=broker.connection("listing"))
    with pytest.raises(ClusterAuthorizationFailedError):
        await apply_acls(broker.bootstrap, [AclBinding("User:listing", "Topic", broker.prefix + "ehr.visits.v1",
                                                       "Read")], broker.connection("listing"))


async def _transaction(broker: AclBroker, who: str, transactional_id: str, topic: str) -> None:
    producer = transactional_producer(broker.bootstrap, f"acl-test-{who}", broker.prefix + transactional_id,
                                      broker.connection(who))
    await producer.start()
    try:
        await asyncio.wait_for(init_transactions(producer), 30)
        async with producer.transaction():
            await producer.send(broker.prefix + topic, b"{}", key=b"pk-test")
    finally:
        await producer.stop()


async def test_only_the_continuity_worker_may_use_its_partitions_transactional_ids(broker):
    from services.continuity.adapters.changelog import transactional_id
    from services.continuity.bootstrap import changelog_topic

    await _transaction(broker, "continuity", transactional_id("", "continuity", 0), changelog_topic())
    with pytest.raises(TransactionalIdAuthorizationFailed):  # listing may not fence the worker's partition 0
        await _transaction(broker, "listing", transactional_id("", "continuity", 0), "listing.events.v1")
