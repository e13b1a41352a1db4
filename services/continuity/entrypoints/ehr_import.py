"""`flk ehr import`: load a region's historical visit extract into ``ehr.visits.v1``.

The order of going live (docs/going-live.md): the listings (`flk listing import`), then the visit
history (this command), then the live EHR events.
"""
from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import IO

import click

from flk.progress import StatusLine
from services.continuity.adapters.visit_extract import (
    MissingColumns,
    PatientKeys,
    platform_pseudonym_key,
    read_extract,
)
from services.continuity.service_layer.history_import import ImportSummary, import_rows

MAX_SHOWN_BAD_ROWS = 1_000


class Terminal:
    """Bad rows and progress on stderr (flk.progress): a live line on a terminal, redrawn every ``every_s``,
    with bad rows printed above it; a plain line every 10 s otherwise."""

    def __init__(self, path: Path, progress: bool, interactive: bool, every_s: float = 0.5,
                 stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.progress = progress
        self.clock = clock
        self.started = clock()
        self.status = StatusLine(enabled=progress, stream=stream, terminal=interactive, refresh_s=every_s,
                                 log_every_s=10.0, clock=clock)
        self.bad = 0

    def bad_row(self, line: int, reason: str) -> None:
        self.bad += 1
        if self.bad <= MAX_SHOWN_BAD_ROWS:
            self.status.print(f"{self.path.name}:{line}: {reason}")
        elif self.bad == MAX_SHOWN_BAD_ROWS + 1:
            self.status.print("further bad rows are counted but not shown")

    def tick(self, summary: ImportSummary) -> None:
        if not self.status.due():
            return
        rate = summary.rows / max(self.clock() - self.started, 1e-9)
        self.status.update(f"{_n(summary.rows)} rows, {_n(summary.visits)} visits, {_n(summary.patients)} patients, "
                           f"{_n(summary.bad)} bad | {_n(rate)} rows/s")

    def done(self) -> None:
        self.status.close()


def _n(number: float) -> str:
    """A count with a space between thousands (not the comma the list separators use)."""
    return f"{number:,.0f}".replace(",", " ")


@click.group()
def ehr() -> None:
    """EHR data: importing a region's visit history."""


@ehr.command("import")
@click.argument("extract", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--region-code", required=True, help="The region's län code, e.g. 19.")
@click.option("--complete-from", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The first day the extract holds every visit of [default: its earliest visit's day].")
@click.option("--dry-run", is_flag=True, help="Check every row against the contracts; publish and record nothing.")
@click.option("--batch-size", type=click.IntRange(min=1), default=2_000, show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress on stderr [default: on a terminal].")
@click.pass_context
def import_history(ctx: click.Context, extract: Path, region_code: str, complete_from: datetime | None,
                   dry_run: bool, batch_size: int, progress: bool | None) -> None:
    """Publish a visit extract (CSV) to ehr.visits.v1 as ordinary visit events, and record from when the
    region's visit data are complete.

    Columns: patient_id (patient key or personnummer/samordningsnummer: pseudonymised here),
    visit_id, practitioner_id, profession, care_unit_id, occurred_at, contact_type, and optionally
    cancelled_at, cancel_reason, source_system. Bad rows are reported with their line number and
    skipped (exit code 1). Event ids are derived from the visit ids: importing the same extract
    again publishes nothing a consumer counts twice. The data coverage is recorded only when no
    row was bad (a skipped row is a missing visit).
    """
    from flk.settings import PlatformSettings

    platform = PlatformSettings()
    interactive = sys.stderr.isatty()
    terminal = Terminal(extract, interactive if progress is None else progress, interactive)
    keys = PatientKeys(platform_pseudonym_key)
    try:
        rows = read_extract(extract, keys, for_events=True)
        summary = asyncio.run(_run(platform, rows, terminal, dry_run, batch_size))
    except MissingColumns as exc:
        raise click.BadParameter(str(exc), param_hint="EXTRACT") from None
    finally:
        terminal.done()

    start = complete_from.date() if complete_from else summary.first_day
    span = f"{summary.first_day} – {summary.last_day}" if summary.first_day else "no visits"
    click.echo(f"{'dry run: ' if dry_run else ''}{_n(summary.rows)} rows: {_n(summary.visits)} visits "
               f"({_n(summary.cancelled)} cancelled) of {_n(summary.patients)} patients, {span}; "
               f"{_n(summary.bad)} bad rows skipped")
    if dry_run:
        click.echo("nothing published, nothing recorded (dry run)")
    else:
        click.echo(f"{_n(summary.published)} events published to ehr.visits.v1")
        if summary.bad:
            click.echo(f"data coverage NOT recorded: {summary.bad} rows were skipped; fix them and import again "
                       "(nothing is counted twice), or record it with `flk continuity coverage set`")
        elif start is None:
            click.echo("data coverage not recorded: the extract has no visits")
        else:
            asyncio.run(_record_coverage(platform, region_code, start, extract, summary))
            click.echo(f"region {region_code}: visit data complete from {start} (history-import)")
    if summary.bad:
        ctx.exit(1)


async def _run(platform, rows, terminal: Terminal, dry_run: bool, batch_size: int) -> ImportSummary:
    if dry_run:
        return await import_rows(rows, None, on_bad_row=terminal.bad_row, on_progress=terminal.tick)
    from flk.events.producer import new_producer, publish_many

    producer = new_producer(platform.kafka_bootstrap, client_id="flk-ehr-import",
                            connection=platform.kafka_connection())
    await producer.start()
    try:
        return await import_rows(rows, lambda batch: publish_many(producer, batch, platform.topic_prefix),
                                 on_bad_row=terminal.bad_row, on_progress=terminal.tick, batch_size=batch_size)
    finally:
        await producer.stop()


async def _record_coverage(platform, region_code: str, start: date, extract: Path, summary: ImportSummary) -> None:
    import asyncpg

    from services.continuity.adapters.coverage import record_coverage

    conn = await asyncpg.connect(platform.database_url.get_secret_value())
    try:
        await record_coverage(conn, region_code, start, source="history-import",
                              note=f"{extract.name}: {summary.visits} visits {summary.first_day} – {summary.last_day}")
    finally:
        await conn.close()
