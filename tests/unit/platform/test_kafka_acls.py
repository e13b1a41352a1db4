"""The ACLs of a shared cluster, derived from the topic registry and the services' declarations
(flk/events/acls.py, tools/kafka_acls.py): who may write, read and join what. No broker."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from flk.events.acls import AclBinding, KafkaUse, acls_for, cluster_acls
from flk.events.registry import parse_registry, registry
from tools.kafka_acls import declared_uses, derived_acls, kafka

pytestmark = pytest.mark.unit


def _can(rules: list[AclBinding], who: str, operation: str, resource: str, kind: str = "Topic") -> bool:
    return any(r.principal == f"User:{who}" and r.operation == operation and r.resource == resource
               and r.resource_type == kind for r in rules)


def _topics(rules: list[AclBinding], who: str, operation: str) -> set[str]:
    return {r.resource for r in rules if r.principal == f"User:{who}" and r.operation == operation
            and r.resource_type == "Topic"}


def test_a_service_writes_exactly_the_topics_the_registry_names_it_the_writer_of():
    rules = acls_for(KafkaUse("listing"), registry())
    assert _topics(rules, "listing", "Write") == {s.name for s in registry().written_by("listing")} \
        == {"listing.events.v1", "listing.capacity.v1"}
    assert _topics(rules, "listing", "Read") == set()


def test_a_consumer_reads_its_topics_and_writes_only_their_dead_letters():
    rules = acls_for(KafkaUse("notifier", consumes=("listing.started.v1", "risk.assessed.v1"),
                              groups=("notifier",)), registry())
    assert _topics(rules, "notifier", "Read") == {"listing.events.v1", "acg.risk-assessments.v1"}
    assert _topics(rules, "notifier", "Write") == {"listing.events.v1.dlq", "acg.risk-assessments.v1.dlq",
                                                    "caregaps.events.v1", "notifier.alerts.v1"}
    assert _can(rules, "notifier", "Read", "notifier", "Group")


def test_a_followed_topic_is_read_without_a_dead_letter_right():
    rules = acls_for(KafkaUse("continuity", follows=("care_unit.contracted.v1",)), registry())
    assert _can(rules, "continuity", "Read", "region.care-units.v1")
    assert not _can(rules, "continuity", "Write", "region.care-units.v1.dlq")


def test_the_topic_prefix_applies_to_topics_groups_and_transactional_ids_not_to_principals():
    rules = acls_for(KafkaUse("continuity", consumes=("visit.recorded.v1",), groups=("continuity",),
                              transactional_id_prefixes=("continuity-",)), registry(), prefix="run1.")
    assert _can(rules, "continuity", "Read", "run1.ehr.visits.v1")
    assert _can(rules, "continuity", "Read", "run1.continuity", "Group")
    tids = [r for r in rules if r.resource_type == "TransactionalId"]
    assert {(r.resource, r.pattern, r.operation) for r in tids} == {
        ("run1.continuity-", "PREFIXED", "Write"), ("run1.continuity-", "PREFIXED", "Describe")}
    assert {r.principal for r in rules} == {"User:continuity"}


def test_a_gateway_writes_as_an_external_writer_only_the_topics_of_the_events_it_produces():
    rules = acls_for(KafkaUse("ingest", writes_as="ehr", produces=("visit.recorded.v1", "visit.cancelled.v1")),
                     registry())
    assert _topics(rules, "ingest", "Write") == {"ehr.visits.v1"}  # not listing.commands.v1, ehr's too


def test_a_declaration_that_produces_another_writers_events_is_refused():
    with pytest.raises(ValueError, match="writer of continuity.indices.v1 is continuity"):
        acls_for(KafkaUse("listing", produces=("continuity.indices_changed.v1",)), registry())


def test_every_writer_the_registry_names_gets_a_principal_for_its_topics():
    rules = cluster_acls(declared_uses(), registry())
    for spec in registry().topics:
        assert _can(rules, spec.writer, "Write", spec.name), spec.name
    writers = {spec.writer for spec in registry().topics}
    assert {r.principal.removeprefix("User:") for r in rules} == writers | {"ingest"}


def test_a_topic_nobody_may_write_is_an_error():
    with pytest.raises(ValueError, match="no principal may write listing.capacity.v1"):
        cluster_acls([KafkaUse("listing", produces=("listing.started.v1",))], registry())


def test_two_declarations_for_one_principal_are_an_error():
    with pytest.raises(ValueError, match="two declarations"):
        cluster_acls([KafkaUse("listing"), KafkaUse("listing")], registry())


def test_the_services_acls_are_what_their_consumers_subscribe_to():
    """The ACLs come from the constants the consumers subscribe with, so they cannot drift apart."""
    from services.continuity.bootstrap import changelog_topic, input_topics
    from services.listing.bootstrap import command_topics, fact_topics
    from services.notifier.bootstrap import consumed_topics

    rules = derived_acls("")
    assert _topics(rules, "continuity", "Read") == {*input_topics(), "region.care-units.v1", changelog_topic()}
    assert _topics(rules, "listing", "Read") == {*command_topics(), *fact_topics()}
    assert _topics(rules, "notifier", "Read") == set(consumed_topics())
    assert _topics(rules, "ingest", "Read") == set()
    groups = {r.resource for r in rules if r.resource_type == "Group"}
    assert groups == {"continuity", "continuity.replicas", "notifier", "listing.commands", "listing.facts"}  # continuity.replicas: the serving replicas (follower.py)


def test_a_group_id_setting_moves_the_group_acl_with_it(monkeypatch):
    monkeypatch.setenv("FLK_LISTING_CONSUMER_GROUP", "listing-r19")
    monkeypatch.setenv("FLK_TOPIC_PREFIX", "r19.")
    groups = {r.resource for r in derived_acls("r19.") if r.principal == "User:listing" and r.resource_type == "Group"}
    assert groups == {"r19.listing-r19.commands", "r19.listing-r19.facts"}


def test_a_topic_added_to_the_registry_comes_along_for_its_writer():
    """E.g. a compacted changelog the continuity worker writes: no second list to update."""
    document = {"patient_partitions": 6, "topics": [
        {"name": "ehr.visits.v1", "key": "patient_key", "writer": "ehr", "events": ["visit.recorded.v1"]},
        {"name": "continuity.table-changelog.v1", "key": "patient_key", "writer": "continuity",
         "events": ["continuity.record_changed.v1"]}]}
    rules = cluster_acls([KafkaUse("continuity", consumes=("visit.recorded.v1",))], parse_registry(document))
    assert _can(rules, "continuity", "Write", "continuity.table-changelog.v1")


def test_the_command_prints_a_rule_per_line_in_either_format():
    runner = CliRunner()
    table = runner.invoke(kafka, ["acls", "--print", "--prefix", "r19.", "--principal", "User:flk-{name}"])
    assert table.exit_code == 0, table.output
    assert "User:flk-listing" in table.output and "r19.listing.events.v1" in table.output
    args = runner.invoke(kafka, ["acls", "--format", "kafka-acls", "--prefix", ""])
    assert "--allow-principal User:ingest --operation Write --topic ehr.visits.v1" in args.output
    bad = runner.invoke(kafka, ["acls", "--principal", "flk-{name}"])
    assert bad.exit_code != 0


def test_the_acl_broker_has_no_unauthenticated_listener_and_one_super_user(tmp_path):
    from tools.infra.kafka import acl_listeners
    from tools.infra.settings import InfraSettings

    props = acl_listeners(InfraSettings(state_dir=tmp_path, kafka_acls=True, kafka_sasl_users={"listing": "pw"}))
    assert "PLAINTEXT://" not in props["listeners"].replace("SASL_PLAINTEXT://", "")
    assert props["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    assert props["super.users"] == "User:flk-admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert 'user_listing="pw"' in props["listener.name.sasl_plaintext.plain.sasl.jaas.config"]


def test_a_user_name_that_would_break_the_jaas_configuration_is_refused(tmp_path):
    from tools.infra.kafka import acl_listeners
    from tools.infra.process import InfraError
    from tools.infra.settings import InfraSettings

    with pytest.raises(InfraError):
        acl_listeners(InfraSettings(state_dir=tmp_path, kafka_acls=True, kafka_sasl_users={'x" user_admin="': "pw"}))


def test_the_continuity_worker_restores_from_its_own_changelog_and_no_one_else_reads_it():
    rules = derived_acls("r19.")
    changelog = "r19." + registry().changelog("continuity", "patients").name
    assert _can(rules, "continuity", "Read", changelog) and _can(rules, "continuity", "Write", changelog)
    assert {r.principal for r in rules if r.resource == changelog} == {"User:continuity"}
    assert not any(r.resource == changelog + ".dlq" for r in rules)  # a changelog has no dead-letter twin


def test_the_continuity_worker_may_use_exactly_its_partitions_transactional_ids():
    from services.continuity.adapters.changelog import transactional_id

    tids = [r for r in derived_acls("r19.") if r.resource_type == "TransactionalId"]
    assert {(r.principal, r.pattern) for r in tids} == {("User:continuity", "PREFIXED")}
    (granted,) = {r.resource for r in tids}
    assert all(transactional_id("r19.", "continuity", p).startswith(granted) for p in range(6))
