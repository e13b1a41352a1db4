"""`flk continuity ...`: the batch baseline of the continuity indices.

The batch feeds every visit through the same pure per-patient functions as the
stream worker (``record_visit``, ``set_listing``, ``compute_indices``), so both
give the same numbers on the same input.  Memory stays bounded: rows are read
in chunks and each patient's state is kept encoded (a few hundred bytes, see
``services.continuity.adapters.state_codec``); rows themselves are never held.
"""
from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO

import click

from flk.progress import StatusLine
from services.continuity.adapters.json_lines import JsonLines
from services.continuity.adapters.state_codec import decode_state, encode_state
from services.continuity.domain.patient import (
    EMPTY_STATE,
    PatientState,
    Visit,
    compute_indices,
    record_visit,
    set_listing,
)
from services.continuity.domain.settings import ContinuitySettings, Scope

LISTING_COLUMNS = ("patient_id", "care_unit_id", "fast_lakarkontakt_id")
CHUNK_ROWS = 50_000
PROGRESS_EVERY = 250_000
MAX_REPORTED_BAD_ROWS = 1_000
ENGINES = ("polars", "pure")

# A patient's state: encoded bytes, or the object itself if it exceeds the codec's limits.
StoredState = bytes | PatientState


class BadRow(ValueError):
    """A row that cannot be used; the message is the reason."""


@dataclass
class Report:
    """Counts, bad-row reporting and progress on stderr (flk.progress: a live line on a terminal, a line
    per PROGRESS_EVERY rows otherwise; bad rows printed above the live line)."""

    progress: bool
    terminal: bool = False
    rows: int = 0
    bad: int = 0
    cancelled: int = 0
    status: StatusLine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.status = StatusLine(enabled=self.progress, terminal=self.terminal, log_every_s=0)

    def bad_row(self, path: Path, line: int, reason: str) -> None:
        self.bad += 1
        if self.bad <= MAX_REPORTED_BAD_ROWS:
            self.status.print(f"{path}:{line}: skipped: {reason}")
        elif self.bad == MAX_REPORTED_BAD_ROWS + 1:
            self.status.print("further bad rows are counted but not shown")

    def tick(self, what: str, patients: int) -> None:
        if self.progress:
            self.status.update(f"{what}: {self.rows:,} rows, {patients:,} patients")

    def done(self) -> None:
        self.status.close()


def _header(reader: Iterator[list[str]], path: Path, required: tuple[str, ...], param: str) -> dict[str, int]:
    try:
        names = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise click.BadParameter(f"{path} is empty (no header row)", param_hint=param) from None
    missing = [c for c in required if c not in names]
    if missing:
        raise click.BadParameter(f"{path} lacks columns: {', '.join(missing)}", param_hint=param)
    return {name: i for i, name in enumerate(names)}


def _cell(row: list[str], index: int, name: str) -> str:
    value = row[index].strip()
    if not value:
        raise BadRow(f"empty {name}")
    return value


def _load(stored: StoredState) -> PatientState:
    return stored if isinstance(stored, PatientState) else decode_state(stored)


def _store(state: PatientState) -> StoredState:
    try:
        return encode_state(state)
    except ValueError:  # beyond the codec's per-patient limits: keep the object
        return state


def read_listing_rows(path: Path, report: Report) -> dict[str, tuple[str, set[str]]]:
    """Each listed patient's unit and fast läkarkontakt(er).

    Several rows for one patient and unit add FLKs (regions with several FLKs);
    a second unit for the same patient is a bad row (one listing at a time).
    """
    listings: dict[str, tuple[str, set[str]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        columns = _header(reader, path, LISTING_COLUMNS, "--listings")
        pi, ui, fi = (columns[c] for c in LISTING_COLUMNS)
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            try:
                if len(row) < len(columns):
                    raise BadRow(f"expected {len(columns)} fields, got {len(row)}")
                patient_id = _cell(row, pi, "patient_id")
                unit = _cell(row, ui, "care_unit_id")
                flk = row[fi].strip()
                known = listings.get(patient_id)
                if known is None:
                    known = listings[patient_id] = (unit, set())
                elif known[0] != unit:
                    raise BadRow(f"patient already listed at {known[0]}, not also at {unit}")
                if flk:
                    known[1].add(flk)
            except BadRow as exc:
                report.bad_row(path, line, str(exc))
    return listings


def read_listings(path: Path, states: dict[str, StoredState], report: Report) -> None:
    """Put each listed patient's unit and fast läkarkontakt(er) into ``states`` (see ``read_listing_rows``)."""
    for patient_id, (unit, flks) in read_listing_rows(path, report).items():
        states[patient_id] = _store(set_listing(EMPTY_STATE, unit, flks))


def read_visits(
    path: Path,
    states: dict[str, StoredState],
    as_of: date,
    settings: ContinuitySettings,
    report: Report,
) -> None:
    """Feed every visit row through ``record_visit``, chunk by chunk.

    The file is the region's visit extract (``services.continuity.adapters.visit_extract``, the one
    `flk ehr import` publishes): a cancelled row (``cancelled_at`` set) is left out, a personnummer
    is pseudonymised to the patient key the stream uses.
    """
    from services.continuity.adapters.visit_extract import (
        BadRow as ExtractBadRow,
    )
    from services.continuity.adapters.visit_extract import (
        MissingColumns,
        PatientKeys,
        platform_pseudonym_key,
        read_extract,
    )

    keys = PatientKeys(platform_pseudonym_key, keep_other_ids=True)
    chunk: dict[str, list[Visit]] = {}
    in_chunk = 0
    try:
        for line, row in read_extract(path, keys, for_events=False):
            report.rows += 1
            if isinstance(row, ExtractBadRow):
                report.bad_row(path, line, str(row))
                continue
            if row.cancelled_at is not None:  # left out; the patient still gets a line, as in the stream
                report.cancelled += 1
                chunk.setdefault(row.patient_key, [])
                continue
            chunk.setdefault(row.patient_key, []).append(Visit(
                row.visit_id, row.practitioner_id, row.profession, row.care_unit_id, row.occurred_at,
                seq=line, contact_type=row.contact_type))
            in_chunk += 1
            if in_chunk >= CHUNK_ROWS:
                _apply(chunk, states, as_of, settings)
                chunk, in_chunk = {}, 0
            if report.rows % PROGRESS_EVERY == 0:
                report.tick("visits", len(states))
    except MissingColumns as exc:
        raise click.BadParameter(str(exc), param_hint="--visits") from None
    _apply(chunk, states, as_of, settings)
    report.tick("visits", len(states))


def _apply(
    chunk: dict[str, list[Visit]], states: dict[str, StoredState], as_of: date, settings: ContinuitySettings
) -> None:
    for patient_id, visits in chunk.items():
        stored = states.get(patient_id)
        state = before = EMPTY_STATE if stored is None else _load(stored)
        for visit in visits:
            state = record_visit(state, visit, as_of, settings)
        if stored is None or state is not before:
            states[patient_id] = _store(state)


def write_indices(
    states: dict[str, StoredState], as_of: date, settings: ContinuitySettings, out: IO[bytes]
) -> None:
    """One JSON line per patient, sorted by patient id."""
    lines = JsonLines(out)
    for patient_id in sorted(states):
        indices = compute_indices(_load(states[patient_id]), as_of, settings)
        lines.write({"patient_id": patient_id, **indices.to_json_dict()})
    lines.close()


@click.group()
def continuity() -> None:
    """Continuity of care (COC, UPC, SECON, HHI, MMCI, KPC)."""


@continuity.command("indices")
@click.option(
    "--visits",
    "visits_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV: patient_id, visit_id, practitioner_id, profession, care_unit_id, occurred_at[, contact_type, "
         "cancelled_at, ...] (the extract `flk ehr import` reads).",
)
@click.option(
    "--listings",
    "listings_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV: patient_id, care_unit_id, fast_lakarkontakt_id (may be empty).",
)
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), help="Measure as of this date [default: today].")
@click.option(
    "--window-months", type=click.IntRange(min=0), default=18, show_default=True, help="0 = no window (all visits)."
)
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    default=Scope.LISTING_UNIT.value,
    show_default=True,
    help="Count visits at the listing unit only, or at all units.",
)
@click.option("--min-visits", type=click.IntRange(min=0), default=3, show_default=True, help="Visits needed to be eligible.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress on stderr [default: when stderr is a terminal].",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="polars",
    show_default=True,
    help="polars: vectorised, the same output as pure (property-tested; a file it cannot read exactly "
         "as the pure path does is handed to pure, with a note on stderr). pure: the per-patient "
         "functions the stream worker uses, row by row.",
)
@click.pass_context
def indices(
    ctx: click.Context,
    visits_path: Path,
    listings_path: Path | None,
    as_of: datetime | None,
    window_months: int,
    scope: str,
    min_visits: int,
    progress: bool | None,
    engine: str,
) -> None:
    """Per-patient continuity indices as JSON lines on stdout (doctor and total contacts).

    Every patient in either file gets a line; bad rows are reported on stderr
    with their line number and skipped (exit code 1 if any were).
    """
    settings = ContinuitySettings(window_months=window_months, min_visits=min_visits, scope=Scope(scope))
    day = as_of.date() if as_of is not None else date.today()
    terminal = sys.stderr.isatty()
    report = Report(progress=terminal if progress is None else progress, terminal=terminal)
    listings = read_listing_rows(listings_path, report) if listings_path is not None else {}
    patients = _indices_polars(visits_path, listings, day, settings, report) if engine == "polars" else None
    if patients is None:
        patients = _indices_pure(visits_path, listings, day, settings, report)
    click.echo(
        f"continuity indices as of {day.isoformat()}: {report.rows:,} visit rows "
        f"({report.cancelled:,} cancelled, left out), {patients:,} patients, {report.bad:,} bad rows skipped",
        err=True,
    )
    if report.bad:
        ctx.exit(1)


def _indices_pure(
    visits_path: Path, listings: dict[str, tuple[str, set[str]]], day: date, settings: ContinuitySettings,
    report: Report,
) -> int:
    states: dict[str, StoredState] = {
        patient_id: _store(set_listing(EMPTY_STATE, unit, flks)) for patient_id, (unit, flks) in listings.items()
    }
    read_visits(visits_path, states, day, settings, report)
    report.done()
    write_indices(states, day, settings, click.get_binary_stream("stdout"))
    return len(states)


def _indices_polars(
    visits_path: Path, listings: dict[str, tuple[str, set[str]]], day: date, settings: ContinuitySettings,
    report: Report,
) -> int | None:
    """The patients written, or None when the visit file needs the pure engine (said on stderr)."""
    from services.continuity.adapters.batch_polars import (
        Unsupported,
        compute_indices_polars,
    )
    from services.continuity.adapters.visit_extract import (
        PatientKeys,
        platform_pseudonym_key,
    )

    def progress(rows: int, patients: int) -> None:
        report.rows = rows
        report.tick("visits", patients)

    try:
        totals, patients = compute_indices_polars(
            visits_path, {p: (u, frozenset(f)) for p, (u, f) in listings.items()}, day, settings,
            PatientKeys(platform_pseudonym_key, keep_other_ids=True), click.get_binary_stream("stdout"),
            lambda line, reason: report.bad_row(visits_path, line, reason), progress,
        )
    except Unsupported as exc:
        report.done()
        report.rows = 0
        click.echo(f"engine polars: {exc}; computing with the pure engine", err=True)
        return None
    report.done()
    report.rows, report.cancelled = totals.rows, totals.cancelled
    return patients


@continuity.command("worker")
@click.option("--store", type=click.Choice(["rocksdb", "memory"]), help="Override FLK_CONTINUITY_STORE.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Override FLK_CONTINUITY_DATA_DIR.")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), help="Fix 'as of' (default: today, advancing daily).")
def worker(store: str | None, data_dir: Path | None, as_of: datetime | None) -> None:
    """Run the stream worker, its HTTP API and metrics endpoint in one process.

    Settings come from FLK_CONTINUITY_* and FLK_* environment variables (see
    services/continuity/settings.py); SIGTERM/SIGINT stop it cleanly.
    """
    from services.continuity.bootstrap import run_worker
    from services.continuity.settings import ContinuityServiceSettings

    overrides: dict[str, object] = {}
    if store:
        overrides["store"] = store
    if data_dir:
        overrides["data_dir"] = data_dir
    if as_of:
        overrides["as_of"] = as_of.date()
    run_worker(ContinuityServiceSettings(**overrides))


# --------------------------------------------------------------------------- coverage and baselines


def _with_connection(work):
    """Run ``work(conn)`` on a connection to FLK_DATABASE_URL (migrated: `flk db migrate`)."""
    import asyncio

    import asyncpg

    from flk.settings import PlatformSettings

    async def main():
        conn = await asyncpg.connect(PlatformSettings().database_url.get_secret_value())
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


_DATE = click.DateTime(formats=["%Y-%m-%d"])


@continuity.group("coverage")
def coverage() -> None:
    """From when the region's visit data are complete (continuity windows before it are marked incomplete).

    `flk ehr import` records it for an imported history; set it by hand when the data came another way.
    """


@coverage.command("show")
@click.option("--region-code", required=True, help="The region's län code, e.g. 01.")
@click.option("--window-months", type=click.IntRange(min=1), default=18, show_default=True)
def coverage_show(region_code: str, window_months: int) -> None:
    """The recorded starts (the region's and any unit's) and what they mean for an 18-month window."""
    from services.continuity.adapters.coverage import read_coverage_rows
    from services.continuity.domain.coverage import first_complete_day

    rows = _with_connection(lambda conn: read_coverage_rows(conn, region_code))
    if not rows:
        click.echo(f"region {region_code}: no data coverage recorded: every continuity window is marked "
                   "incomplete (import the history with `flk ehr import`, or `flk continuity coverage set`)")
        return
    for r in rows:
        who = f"unit {r['care_unit_id']}" if r["care_unit_id"] else f"region {region_code}"
        start = r["complete_from"]
        click.echo(f"{who}: visit data complete from {start} ({r['source']}"
                   f"{'; ' + r['note'] if r['note'] else ''}); {window_months}-month windows complete as of "
                   f"{first_complete_day(start, window_months)} and later")


@coverage.command("set")
@click.option("--region-code", required=True, help="The region's län code, e.g. 01.")
@click.option("--complete-from", required=True, type=_DATE, help="The first day with complete visit data.")
@click.option("--care-unit", "care_unit_id", default="", help="Only this unit (its sources differ from the region's).")
@click.option("--note", default="", help="Why (kept with the record).")
def coverage_set(region_code: str, complete_from: datetime, care_unit_id: str, note: str) -> None:
    """Record from when visit data are complete (source: configuration)."""
    from services.continuity.adapters.coverage import record_coverage

    _with_connection(lambda conn: record_coverage(conn, region_code, complete_from.date(), source="configuration",
                                                  care_unit_id=care_unit_id, note=note))
    who = f"unit {care_unit_id}" if care_unit_id else f"region {region_code}"
    click.echo(f"{who}: visit data complete from {complete_from.date()} (configuration); snapshots written "
               "from now on carry it")


@coverage.command("clear")
@click.option("--region-code", required=True, help="The region's län code, e.g. 01.")
@click.option("--care-unit", "care_unit_id", default="", help="Only this unit's exception.")
@click.pass_context
def coverage_clear(ctx: click.Context, region_code: str, care_unit_id: str) -> None:
    """Forget a recorded start (windows are then marked incomplete until one is recorded again)."""
    from services.continuity.adapters.coverage import clear_coverage

    found = _with_connection(lambda conn: clear_coverage(conn, region_code, care_unit_id))
    who = f"unit {care_unit_id}" if care_unit_id else f"region {region_code}"
    if not found:
        click.echo(f"{who}: nothing recorded", err=True)
        ctx.exit(1)
    click.echo(f"{who}: data coverage cleared")


@continuity.group("baseline")
def baseline() -> None:
    """The baseline dates G2/G4 are compared with (their per-patient rows are kept)."""


@baseline.command("pin")
@click.option("--region-code", required=True, help="The region's län code, e.g. 01.")
@click.option("--date", "day", required=True, type=_DATE, help="The baseline date.")
@click.option("--note", default="", help="e.g. the board decision it follows.")
def baseline_pin(region_code: str, day: datetime, note: str) -> None:
    """Pin a baseline: the API, the report and the dashboards compare with the latest pinned one."""
    from services.continuity.adapters.coverage import pin_baseline

    _with_connection(lambda conn: pin_baseline(conn, region_code, day.date(), note))
    click.echo(f"region {region_code}: baseline {day.date()} pinned")


@baseline.command("list")
@click.option("--region-code", required=True, help="The region's län code, e.g. 01.")
def baseline_list(region_code: str) -> None:
    """The pinned baselines, latest first."""
    from services.continuity.adapters.goals import pinned_baselines

    rows = _with_connection(lambda conn: pinned_baselines(conn, region_code))
    if not rows:
        click.echo(f"region {region_code}: no baseline pinned")
    for r in rows:
        click.echo(f"{r['baseline_date']}  pinned {r['pinned_at']:%Y-%m-%d %H:%M}  {r['note']}")
