"""Least privilege on a shared Kafka cluster: the ACLs each principal needs, derived from the topic
registry (who writes a topic) and from each client's declaration of what it consumes.

Pure: no broker here. `flk kafka acls` (tools/kafka_acls.py) collects the services' declarations,
prints the bindings or applies them (`apply_acls`, the one function here that talks to a broker).

What a principal may do, and nothing more:

* **write** the topics the registry names it the writer of (``writes_as``, default its own name),
  or only those carrying the event types it declares it ``produces`` (a gateway such as the FHIR
  ingest writes ``ehr.visits.v1`` as one of the EHRs, not ``listing.commands.v1``);
* **read** the topics carrying the event types it ``consumes`` — and write their dead-letter
  twins ``T.dlq`` (whoever consumes T dead-letters T) — or only ``follows`` (read, never dead-lettered);
* **read** (join, commit, describe) its own consumer ``groups``;
* **read** its own changelog topics (``changelog_of`` in the registry: a table's compacted changelog,
  which only its writer restores from; no dead-letter twin);
* **write** the transactional ids under its ``transactional_id_prefixes``, if it uses transactions.

Every name is the one the clients use: topic and group names carry the deployment's topic prefix.
Topic creation stays with the operator (`flk topics create` as an admin): no principal here may
create, delete or alter a topic.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from flk.events.registry import TopicRegistry

ResourceType = Literal["Topic", "Group", "TransactionalId"]
PatternType = Literal["LITERAL", "PREFIXED"]
Operation = Literal["Read", "Write", "Describe"]


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ALLOW rule (from any host): ``principal`` may do ``operation`` on the resource."""

    principal: str  # "User:<name>"
    resource_type: ResourceType
    resource: str
    operation: Operation
    pattern: PatternType = "LITERAL"

    def describe(self) -> str:
        return f"{self.principal:28} {self.operation:9} {self.resource_type:15} {self.resource}" + (
            "*" if self.pattern == "PREFIXED" else "")

    def kafka_acls_args(self) -> str:
        """The same rule as arguments of Kafka's own ``kafka-acls.sh --add``."""
        option = {"Topic": "--topic", "Group": "--group", "TransactionalId": "--transactional-id"}[self.resource_type]
        pattern = " --resource-pattern-type prefixed" if self.pattern == "PREFIXED" else ""
        return f"--allow-principal {self.principal} --operation {self.operation} {option} {self.resource}{pattern}"


@dataclass(frozen=True)
class KafkaUse:
    """What one client of the cluster does on it: the one declaration its ACLs come from.

    A service builds its own from the constants its consumers subscribe with (the event types its
    handlers take) and its settings (group ids), so the ACLs cannot drift from the code.
    """

    name: str  # the principal's name: a service, or a writer the registry names
    consumes: tuple[str, ...] = ()  # event types it reads and dead-letters (topics from the registry)
    follows: tuple[str, ...] = ()  # event types it only reads (no dead letters), e.g. without a group
    groups: tuple[str, ...] = ()  # consumer group ids, without the topic prefix
    writes_as: str | None = None  # the registry writer it produces as; None: its own name
    produces: tuple[str, ...] | None = None  # event types; None: every topic of its writer
    transactional_id_prefixes: tuple[str, ...] = field(default=())  # without the topic prefix

    @property
    def writer(self) -> str:
        return self.writes_as or self.name


def user_principal(name: str) -> str:
    return f"User:{name}"


def written_topics(use: KafkaUse, registry: TopicRegistry) -> tuple[str, ...]:
    """The topics ``use`` writes (the dead-letter topics aside), checked against the registry's writers."""
    if use.produces is None:
        return tuple(spec.name for spec in registry.written_by(use.writer))
    topics = []
    for event_type in use.produces:
        spec = registry.topic_for(event_type)
        if spec.writer != use.writer:
            raise ValueError(f"{use.name} declares it produces {event_type}, but the registry's writer of "
                             f"{spec.name} is {spec.writer}, not {use.writer}")
        topics.append(spec.name)
    return tuple(sorted(set(topics)))


def acls_for(use: KafkaUse, registry: TopicRegistry, prefix: str = "",
             principal: Callable[[str], str] = user_principal) -> list[AclBinding]:
    """The rules ``use`` needs under the topic ``prefix``, sorted, without duplicates."""
    who = principal(use.name)
    consumed = registry.topics_carrying(use.consumes)
    rules: set[AclBinding] = set()
    for topic in written_topics(use, registry):
        rules |= {AclBinding(who, "Topic", prefix + topic, op) for op in ("Write", "Describe")}
        if registry.topic(topic).is_changelog:  # a table's changelog: its writer restores from it
            rules.add(AclBinding(who, "Topic", prefix + topic, "Read"))
    for topic in consumed:
        rules |= {AclBinding(who, "Topic", prefix + topic, op) for op in ("Read", "Describe")}
        dlq = registry.topic(topic).dlq
        rules |= {AclBinding(who, "Topic", prefix + dlq, op) for op in ("Write", "Describe")}
    for topic in registry.topics_carrying(use.follows):
        rules |= {AclBinding(who, "Topic", prefix + topic, op) for op in ("Read", "Describe")}
    for group in use.groups:
        rules |= {AclBinding(who, "Group", prefix + group, op) for op in ("Read", "Describe")}
    for tid in use.transactional_id_prefixes:
        rules |= {AclBinding(who, "TransactionalId", prefix + tid, op, "PREFIXED") for op in ("Write", "Describe")}
    return sorted(rules)


def external_uses(registry: TopicRegistry, declared: Iterable[KafkaUse]) -> list[KafkaUse]:
    """A principal for each writer the registry names that no declared client is: the external
    systems (the EHRs, the region's vårdval administration, ...), each writing its own topics."""
    names = {use.name for use in declared}
    writers = sorted({spec.writer for spec in registry.topics} - names)
    return [KafkaUse(name=writer) for writer in writers]


def cluster_acls(uses: Iterable[KafkaUse], registry: TopicRegistry, prefix: str = "",
                 principal: Callable[[str], str] = user_principal) -> list[AclBinding]:
    """Every rule of every client: the declared ones and a principal for each external writer."""
    uses = list(uses)
    seen: set[str] = set()
    for use in uses:
        if use.name in seen:
            raise ValueError(f"two declarations for the principal {use.name}")
        seen.add(use.name)
    rules: set[AclBinding] = set()
    for use in [*uses, *external_uses(registry, uses)]:
        rules.update(acls_for(use, registry, prefix, principal))
    unwritten = [spec.name for spec in registry.topics
                 if not any(r.resource == prefix + spec.name and r.operation == "Write" for r in rules)]
    if unwritten:
        raise ValueError(f"no principal may write {', '.join(unwritten)}")
    return sorted(rules)


# --- applying them (the one part that talks to a broker) -------------------------------------------

_RESOURCE_CODE = {"Topic": 2, "Group": 3, "TransactionalId": 5}
_OPERATION_CODE = {"Read": 3, "Write": 4, "Describe": 8}
_PATTERN_CODE = {"LITERAL": 3, "PREFIXED": 4}
_ALLOW = 3


async def apply_acls(bootstrap: str, rules: Iterable[AclBinding], connection=None, visible_within_s: float = 30.0) -> int:
    """Create the rules on the cluster (creating an existing rule changes nothing) and wait until the
    broker enforces them (the controller commits a rule before the broker's authorizer has it);
    return how many were sent. The connection must be a principal allowed to alter ACLs (a super
    user). Rules not in ``rules`` are left alone: revoking is the operator's decision."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    from flk.events.connection import PLAINTEXT

    rules = sorted(set(rules))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(connection or PLAINTEXT).client_options())
    await admin.start()
    try:
        for rule in rules:
            request = CreateAclsRequest(_RESOURCE_CODE[rule.resource_type], rule.resource, _PATTERN_CODE[rule.pattern],
                                        rule.principal, "*", _OPERATION_CODE[rule.operation], _ALLOW)
            response = await admin._send_request(request)  # aiokafka has the request, not a method for it
            for error_code, message in response.creation_responses:
                if error_code:
                    raise for_code(error_code)(f"ACL {rule.describe()} refused: {message}")
        deadline = asyncio.get_running_loop().time() + visible_within_s
        while missing := set(rules) - await _described(admin):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(missing)} ACL(s) not enforced after {visible_within_s:g}s, "
                                   f"e.g. {min(missing).describe()}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    return len(rules)


async def describe_acls(bootstrap: str, connection=None) -> set[AclBinding]:
    """The ALLOW rules for any host the broker enforces now, of the kinds `acls_for` makes."""
    from aiokafka.admin import AIOKafkaAdminClient

    from flk.events.connection import PLAINTEXT

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(connection or PLAINTEXT).client_options())
    await admin.start()
    try:
        return await _described(admin)
    finally:
        await admin.close()


async def _described(admin) -> set[AclBinding]:
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import DescribeAclsRequest

    any_ = 1
    response = await admin._send_request(DescribeAclsRequest(any_, None, any_, None, None, any_, any_))
    if response.error_code:
        raise for_code(response.error_code)(response.error_message)
    resources = {v: k for k, v in _RESOURCE_CODE.items()}
    operations = {v: k for k, v in _OPERATION_CODE.items()}
    patterns = {v: k for k, v in _PATTERN_CODE.items()}
    found = set()
    for resource_type, name, pattern, acls in response.resources:
        for principal, host, operation, permission in acls:
            if (permission == _ALLOW and host == "*" and resource_type in resources and operation in operations
                    and pattern in patterns):
                found.add(AclBinding(principal, resources[resource_type], name, operations[operation],
                                     patterns[pattern]))
    return found
