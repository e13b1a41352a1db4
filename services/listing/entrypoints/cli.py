"""`flk listing ...`: the listing service's commands. Each subcommand is a small function that
imports what it needs when it runs (``flk --help`` stays fast, no I/O at import time); add a
command with ``@listing.command()``."""
from __future__ import annotations

import click


@click.group()
def listing() -> None:
    """The listing register and fast läkarkontakt rules (rule ids L1–P3)."""


@listing.command()
@click.option("--host", default=None, help="HTTP host (default FLK_LISTING_HTTP_HOST)")
@click.option("--port", default=None, type=int, help="HTTP port (default FLK_LISTING_HTTP_PORT, 8081)")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="apply pending migrations first")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="uvicorn's access log (patient keys redacted); costs ~0.15 ms of CPU per request")
def run(host: str | None, port: int | None, migrate: bool, access_log: bool) -> None:
    """Run the service: REST API, Kafka consumers (commands and facts) and the outbox relay."""
    from flk.service import apply_own_migrations, configure_logging, serve
    from services.listing import MIGRATIONS
    from services.listing.entrypoints.api import create_app
    from services.listing.settings import ListingSettings

    configure_logging()
    settings = ListingSettings()
    if migrate:
        apply_own_migrations(settings.platform, MIGRATIONS, click.echo)
    serve(create_app(settings), host or settings.http_host, port or settings.http_port, access_log=access_log)


# `flk listing import` (migration from a region's listing system) and `flk listing kpi-snapshot`
# (daily G1/G3 for the dashboards): wiring in their own modules.
from services.listing.entrypoints.import_cli import import_extract  # noqa: E402
from services.listing.entrypoints.kpi_cli import kpi_snapshot  # noqa: E402

listing.add_command(import_extract)
listing.add_command(kpi_snapshot)
