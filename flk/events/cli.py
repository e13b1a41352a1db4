"""`flk topics ...`: the topic registry."""
from __future__ import annotations

import click

from flk.events.registry import registry


@click.group()
def topics() -> None:
    """The topic registry (schemas/topics.yaml)."""


@topics.command("list")
def list_topics() -> None:
    """Topics, keys, partitions, writers and event types."""
    for spec in registry().topics:
        click.echo(f"{spec.name:32} key={spec.key:16} partitions={spec.partitions} writer={spec.writer}")
        for event_type in spec.events:
            click.echo(f"    {event_type}")


@topics.command()
@click.option("--bootstrap", envvar="FLK_KAFKA_BOOTSTRAP", help="defaults to the local broker")
def create(bootstrap: str | None) -> None:
    """Create missing topics and their dead-letter topics (TLS/SASL from FLK_KAFKA_*); bring existing
    topics to the registry's retention."""
    from flk.events.admin import ensure_topics_sync
    from flk.settings import PlatformSettings

    platform = PlatformSettings()
    created = ensure_topics_sync(bootstrap or platform.kafka_bootstrap, platform.kafka_connection(),
                                 platform.topic_retention_ms)
    click.echo(f"{len(created)} topic(s) created")
