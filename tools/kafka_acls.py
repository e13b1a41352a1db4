"""`flk kafka acls`: the ACLs of a shared cluster, derived from the topic registry and the services'
own declarations of what they consume (each service's ``kafka_use``), printed or applied.

The composition root is the one place that knows every service, so the declarations are collected
here; the derivation itself is the platform's (flk/events/acls.py). Each service's group ids come
from its settings object (``FLK_LISTING_CONSUMER_GROUP``, ...), the topic prefix from
``FLK_TOPIC_PREFIX``: run it with the environment the services run with.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import click

from flk.events.acls import AclBinding, KafkaUse, cluster_acls

DEFAULT_PRINCIPAL = "User:{name}"


def declared_uses() -> list[KafkaUse]:
    """Every service's declaration, with its settings from the environment."""
    from services.continuity.bootstrap import kafka_use as continuity
    from services.continuity.settings import ContinuityServiceSettings
    from services.ingest.adapters.relay import kafka_use as ingest
    from services.listing.bootstrap import kafka_use as listing
    from services.listing.settings import ListingSettings
    from services.notifier.bootstrap import kafka_use as notifier
    from services.notifier.settings import NotifierSettings

    return [listing(ListingSettings()), continuity(ContinuityServiceSettings()), notifier(NotifierSettings()),
            ingest()]


def principal_naming(template: str) -> Callable[[str], str]:
    if "{name}" not in template or not template.startswith("User:"):
        raise click.BadParameter("must look like 'User:{name}' (e.g. 'User:flk-{name}')", param_hint="--principal")
    return lambda name: template.format(name=name)


def derived_acls(prefix: str, template: str = DEFAULT_PRINCIPAL) -> list[AclBinding]:
    from flk.events.registry import registry

    return cluster_acls(declared_uses(), registry(), prefix, principal_naming(template))


@click.group()
def kafka() -> None:
    """The Kafka cluster: least-privilege ACLs (docs/operations.md "Kafka ACLs")."""


@kafka.command()
@click.option("--print", "action", flag_value="print", default=True, help="print the ACLs (the default)")
@click.option("--apply", "action", flag_value="apply",
              help="create them on the cluster (FLK_KAFKA_BOOTSTRAP, as the super user of FLK_KAFKA_SASL_*)")
@click.option("--format", "fmt", type=click.Choice(["table", "kafka-acls"]), default="table", show_default=True,
              help="kafka-acls: one line of arguments for Kafka's kafka-acls.sh --add per rule")
@click.option("--principal", "template", default=DEFAULT_PRINCIPAL, show_default=True,
              help="how a service's or writer's name becomes a principal")
@click.option("--prefix", default=None, help="topic and group prefix (default FLK_TOPIC_PREFIX)")
def acls(action: str, fmt: str, template: str, prefix: str | None) -> None:
    """Each service's principal may read what it consumes (and write its dead letters), write what the
    registry says it writes, use its own consumer groups; each external writer may write its topics."""
    from flk.settings import PlatformSettings

    platform = PlatformSettings()
    prefix = platform.topic_prefix if prefix is None else prefix
    try:
        rules = derived_acls(prefix, template)
    except (KeyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if action == "print":
        for rule in rules:
            click.echo(rule.kafka_acls_args() if fmt == "kafka-acls" else rule.describe())
        return
    from flk.events.acls import apply_acls

    try:
        sent = asyncio.run(apply_acls(platform.kafka_bootstrap, rules, platform.kafka_connection()))
    except Exception as exc:  # noqa: BLE001 - say what the broker said, exit non-zero
        click.echo(f"flk kafka acls --apply: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    principals = sorted({r.principal for r in rules})
    click.echo(f"{sent} ACL(s) enforced for {len(principals)} principals: {', '.join(principals)}")
