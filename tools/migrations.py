"""Every component's migrations, assembled in apply order, and `flk db ...`.

The platform's come first, then each service's own (each service lists its component in its
package's ``MIGRATIONS``). A service's `run --migrate` applies only the platform's and its own;
`flk db migrate`, `flk infra up` and the main job apply them all.
"""
from __future__ import annotations

import click

from flk.db import migrate as runner
from services import continuity, ingest, listing, notifier
from tools.infra.settings import InfraSettings

#: component -> package holding its ``migrations/`` folder, in apply order
ALL_COMPONENTS: dict[str, str] = (runner.PLATFORM | listing.MIGRATIONS | continuity.MIGRATIONS | notifier.MIGRATIONS
                                   | ingest.MIGRATIONS)


def discover() -> list[runner.Migration]:
    return runner.discover(ALL_COMPONENTS)


async def migrate(dsn: str) -> list[runner.Migration]:
    """Apply every component's pending migrations; return the ones applied."""
    return await runner.migrate(dsn, ALL_COMPONENTS)


def migrate_sync(dsn: str) -> list[runner.Migration]:
    return runner.migrate_sync(dsn, ALL_COMPONENTS)


@click.group()
def db() -> None:
    """The project's PostgreSQL database."""


@db.command(name="migrate")
@click.option("--dsn", envvar="FLK_DATABASE_URL", help="defaults to the local database of `flk infra up`")
def migrate_command(dsn: str | None) -> None:
    """Apply pending migrations (a no-op when up to date)."""
    applied = migrate_sync(dsn or InfraSettings().dsn("app"))
    for m in applied:
        click.echo(f"applied {m.label}")
    click.echo(f"{len(applied)} migration(s) applied")
