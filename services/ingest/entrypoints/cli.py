"""`flk ingest ...`: the FHIR ingest gateway's commands (imports on use: no I/O at import time)."""
from __future__ import annotations

import click


@click.group()
def ingest() -> None:
    """FHIR R4 ingest: Encounters (and Bundles of them) from EHRs -> visit events."""


@ingest.command()
@click.option("--host", default=None, help="HTTP host (default FLK_INGEST_HOST)")
@click.option("--port", default=None, type=int, help="HTTP port (default FLK_INGEST_PORT, 8084)")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="apply pending migrations first")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="uvicorn's access log (patient identifiers redacted)")
def run(host: str | None, port: int | None, migrate: bool, access_log: bool) -> None:
    """Run the FHIR endpoint (/fhir, /fhir/Encounter) and its outbox relay onto ehr.visits.v1."""
    import logging

    import uvicorn

    from services.ingest.entrypoints.api import create_app
    from services.ingest.settings import IngestSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = IngestSettings()
    if migrate:
        from flk.db.migrate import PLATFORM, migrate_sync
        from services.ingest import MIGRATIONS

        for m in migrate_sync(settings.platform.database_url.get_secret_value(), PLATFORM | MIGRATIONS):
            click.echo(f"applied {m.label}")
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port, log_level="info",
                loop="uvloop", http="httptools", access_log=access_log)
