"""`flk db ...`: database maintenance."""
from __future__ import annotations

import click

from flk.infra.settings import InfraSettings


@click.group()
def db() -> None:
    """The project's PostgreSQL database."""


@db.command()
@click.option("--dsn", envvar="FLK_DATABASE_URL", help="defaults to the local database of `flk infra up`")
def migrate(dsn: str | None) -> None:
    """Apply pending migrations (a no-op when up to date)."""
    from flk.db.migrate import migrate_sync

    applied = migrate_sync(dsn or InfraSettings().dsn("app"))
    for m in applied:
        click.echo(f"applied {m.label}")
    click.echo(f"{len(applied)} migration(s) applied")
