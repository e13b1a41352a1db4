"""`flk ehr import`: load a region's historical visit extract into ``ehr.visits.v1``.

The order of going live (docs/going-live.md): the listings (`flk listing import`), then the visit
history (this command), then the live EHR events.
"""
from __future__ import annotations

import asyncio
import sys
import time
from datetime import date, datetime
from pathlib import Path

import click

from services.continuity.adapters.visit_extract import (
    MissingColumns, PatientKeys, platform_pseudonym_key, read_extract,
)
from services.continuity.service_layer.history_import import ImportSummary, import_rows

MAX_SHOWN_BAD_ROWS = 1_000


class Terminal:
    """Bad rows and progress on stderr: a rewritten line on a terminal, a line now and then otherwise."""

    def __init__(self, path: Path, progress: bool, interactive: bool, every_s: float = 0.5) -> None:
        self.path = path
        self.progress = progress
        self.interactive = interactive
        self.every_s = every_s if interactive else 10.0
        self.size = max(path.stat().st_size, 1)
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False
        self.bad = 0

    def bad_row(self, line: int, reason: str) -> None:
        self.bad += 1
        if self.bad <= MAX_SHOWN_BAD_ROWS:
            self._clear()
            click.echo(f"{self.path.name}:{line}: {reason}", err=True)
        elif self.bad == MAX_SHOWN_BAD_ROWS + 1:
            click.echo("further bad rows are counted but not shown", err=True)

    def tick(self, summary: ImportSummary) -> None:
        if not self.progress:
            return
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        rate = summary.rows / max(now - self.started, 1e-9)
        text = (f"{summary.rows:,} rows, {summary.visits:,} visits, {summary.patients:,} patients, "
                f"{summary.bad:,} bad | {rate:,.0f} rows/s").replace(",", " ")
        if self.interactive:
            click.echo(f"\r{text}  ", err=True, nl=False)
            self._shown = True
        else:
            click.echo(text, err=True)

    def done(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._shown:
            click.echo("", err=True)
            self._shown = False


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
    click.echo(f"{'dry run: ' if dry_run else ''}{summary.rows:,} rows: {summary.visits:,} visits "
               f"({summary.cancelled:,} cancelled) of {summary.patients:,} patients, {span}; "
               f"{summary.bad:,} bad rows skipped".replace(",", " "))
    if dry_run:
        click.echo("nothing published, nothing recorded (dry run)")
    else:
        click.echo(f"{summary.published:,} events published to ehr.visits.v1".replace(",", " "))
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
