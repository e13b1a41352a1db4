"""`flk infra up | down | status`: the local Kafka, PostgreSQL and (on request) Prometheus."""
from __future__ import annotations

import sys

import click

from tools.infra.process import InfraError
from tools.infra.settings import InfraSettings


def _components(settings: InfraSettings, with_prometheus: bool, with_keycloak: bool = False) -> list:
    from tools.infra.kafka import Kafka
    from tools.infra.postgres import Postgres

    parts: list = [Kafka(settings), Postgres(settings)]
    if with_prometheus:
        from tools.infra.alertmanager import Alertmanager
        from tools.infra.prometheus import Prometheus

        parts += [Alertmanager(settings), Prometheus(settings)]  # Prometheus sends its alerts there
    if with_keycloak:
        from tools.infra.keycloak import Keycloak

        parts.append(Keycloak(settings))
    return parts


@click.group()
def infra() -> None:
    """Local infrastructure on loopback: Kafka (KRaft), PostgreSQL, Prometheus, Alertmanager."""


@infra.command()
@click.option("--with-prometheus", is_flag=True,
              help="also start Prometheus scraping the services and Alertmanager routing its alerts")
@click.option("--with-keycloak", is_flag=True,
              help="also start Keycloak as the region's identity provider (docs/identity-provider.md)")
@click.option("--topics/--no-topics", default=True, show_default=True, help="create the registry's topics")
def up(with_prometheus: bool, with_keycloak: bool, topics: bool) -> None:
    """Start what is not running; return when every part answers. Idempotent."""
    settings = InfraSettings()
    try:
        for part in _components(settings, with_prometheus, with_keycloak):
            click.echo(part.up())
        if topics:
            from flk.events.admin import ensure_topics_sync
            from tools.infra.kafka import Kafka

            admin = Kafka(settings).admin_connection()  # the super user when the broker enforces ACLs
            created = ensure_topics_sync(settings.kafka_bootstrap, admin)
            click.echo(f"topics: {len(created)} created" + (f" ({', '.join(created)})" if created else ""))
            if settings.kafka_acls:
                import asyncio

                from flk.events.acls import apply_acls
                from tools.kafka_acls import derived_acls

                sent = asyncio.run(apply_acls(settings.kafka_bootstrap, derived_acls(""), admin))
                click.echo(f"ACLs: {sent} enforced (flk kafka acls --print lists them)")
    except InfraError as exc:
        click.echo(f"flk infra up: {exc}", err=True)
        sys.exit(1)


@infra.command()
@click.option("--with-prometheus/--without-prometheus", default=True, show_default=True)
@click.option("--with-keycloak/--without-keycloak", default=True, show_default=True)
def down(with_prometheus: bool, with_keycloak: bool) -> None:
    """Stop only what `flk infra up` started."""
    settings = InfraSettings()
    for part in reversed(_components(settings, with_prometheus, with_keycloak)):
        click.echo(part.down())


@infra.command()
@click.option("--dry-run", is_flag=True, help="only list what would be deleted")
@click.option("--keep-run", "keep_runs", multiple=True, metavar="RUN_ID",
              help="keep the topics and database of this `flk run --fresh` (repeatable)")
def prune(dry_run: bool, keep_runs: tuple[str, ...]) -> None:
    """Delete the topics and databases that tests, benchmarks and `flk run --fresh` left behind.

    The region's own topics (the registry's names without a prefix), Kafka's internal topics and
    the main database stay. A broker holding thousands of left-over partitions starts slowly.
    Not while tests, benchmarks or a `flk run --fresh` are running: their topics would go too.
    """
    import asyncio

    from flk.events.registry import registry
    from tools.infra.prune import prune as prune_local

    settings = InfraSettings()
    result = asyncio.run(prune_local(settings, registry(), dry_run=dry_run, keep_runs=keep_runs))
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(result.topics)} topic(s) and {len(result.databases)} database(s)")
    if dry_run:
        for name in result.databases:
            click.echo(f"  database {name}")
        prefixes = sorted({t.split(".", 1)[0] + "." for t in result.topics})
        for prefix in prefixes:
            click.echo(f"  topics {prefix}*")


@infra.command()
def status() -> None:
    """Show what runs, where."""
    settings = InfraSettings()
    for part in _components(settings, True, True):
        click.echo(part.status())
    click.echo(f"state: {settings.state_dir}  cache: {settings.cache_dir}")
    click.echo(f"FLK_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}")
    click.echo(f"FLK_DATABASE_URL={settings.dsn('app').replace(settings.postgres_app_password.get_secret_value(), '***')}")
