"""`flk listing ...`: the listing service's commands. Each subcommand is a small function that
imports what it needs when it runs (``flk --help`` stays fast, no I/O at import time); add a
command with ``@listing.command()``."""
from __future__ import annotations

import click


@click.group()
def listing() -> None:
    """The listing register and fast läkarkontakt rules (rule ids L1–P3)."""


@listing.command()
@click.option("--host", default=None, help="HTTP host (default FLK_LISTING_HOST)")
@click.option("--port", default=None, type=int, help="HTTP port (default FLK_LISTING_PORT, 8081)")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="apply pending migrations first")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="uvicorn's access log (patient keys redacted); costs ~0.15 ms of CPU per request")
def run(host: str | None, port: int | None, migrate: bool, access_log: bool) -> None:
    """Run the service: REST API, Kafka consumers (commands and facts) and the outbox relay."""
    import logging

    import uvicorn

    from services.listing.entrypoints.api import create_app
    from services.listing.settings import ListingSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ListingSettings()
    if migrate:
        from flk.db.migrate import PLATFORM, migrate_sync
        from services.listing import MIGRATIONS

        for m in migrate_sync(settings.platform.database_url.get_secret_value(), PLATFORM | MIGRATIONS):
            click.echo(f"applied {m.label}")
    # uvloop and httptools (uvicorn[standard]): half the CPU per request of asyncio + h11 (measured on a
    # bare ASGI app at 200 req/s: 0.31 vs 0.62 ms; README "Listing service → Benchmark")
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info",
                loop="uvloop", http="httptools", access_log=access_log)


# `flk listing import` (migration from a region's listing system) and `flk listing kpi-snapshot`
# (daily G1/G3 for the dashboards): wiring in their own modules.
from services.listing.entrypoints.import_cli import import_extract  # noqa: E402
from services.listing.entrypoints.kpi_cli import kpi_snapshot  # noqa: E402

listing.add_command(import_extract)
listing.add_command(kpi_snapshot)
