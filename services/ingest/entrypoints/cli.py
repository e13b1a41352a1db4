"""`flk ingest ...`: the FHIR ingest gateway's commands (imports on use: no I/O at import time)."""
from __future__ import annotations

import click


@click.group()
def ingest() -> None:
    """FHIR R4 ingest: Encounters (and Bundles of them) from EHRs -> visit events."""


@ingest.command()
@click.option("--host", default=None, help="HTTP host (default FLK_INGEST_HTTP_HOST)")
@click.option("--port", default=None, type=int, help="HTTP port (default FLK_INGEST_HTTP_PORT, 8084)")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="apply pending migrations first")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="uvicorn's access log (patient identifiers redacted)")
def run(host: str | None, port: int | None, migrate: bool, access_log: bool) -> None:
    """Run the FHIR endpoint (/fhir, /fhir/Encounter) and its outbox relay onto ehr.visits.v1."""
    from flk.service import apply_own_migrations, configure_logging, serve
    from services.ingest import MIGRATIONS
    from services.ingest.entrypoints.api import create_app
    from services.ingest.settings import IngestSettings

    configure_logging()
    settings = IngestSettings()
    if migrate:
        apply_own_migrations(settings.platform, MIGRATIONS, click.echo)
    serve(create_app(settings), host or settings.http_host, port or settings.http_port, access_log=access_log)
