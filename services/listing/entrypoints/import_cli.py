"""``flk listing import``: wiring only (the logic is in ``service_layer/importer.py`` and the pure
checks in ``domain/import_check.py``). Registered on the ``listing`` group in ``cli.py``."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import click


@click.command("import")
@click.argument("listings_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--profile", default=None,
              help="policy profile (national, vastmanland, kronoberg, kalmar); default FLK_LISTING_PROFILE")
@click.option("--dry-run", is_flag=True, help="check and simulate every row; write nothing")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="registration date of the imported listings (default: today, Europe/Stockholm)")
@click.option("--report-json", "report_json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the machine-readable report (JSON) here")
@click.option("--reservnummer-pattern", default=None, help="regex of the region's reservnummer (else rejected)")
@click.option("--encoding", default="utf-8-sig", show_default=True, help="the file's text encoding")
@click.option("--progress/--no-progress", default=True, show_default=True, help="progress on stderr (large files)")
def import_extract(listings_csv: Path, profile: str | None, dry_run: bool, as_of: object, report_json: Path | None,
                   reservnummer_pattern: str | None, encoding: str, progress: bool) -> None:
    """Import a region's listing extract (person id, unit HSA-id, doctor HSA-id, employment type).

    Reports every rule violation by line number (never a person id); without --dry-run imports
    what is valid in one transaction. Exit code 0: no violations; 1: violations reported (the
    valid rows were still imported unless --dry-run); 2: bad usage or unreadable file.
    """
    import asyncio
    import json

    from services.listing.domain.policy import PROFILES, NoProfileVersion, UnknownProfile, profile_for
    from services.listing.settings import ListingSettings

    settings = ListingSettings()
    profile_name = profile or settings.profile
    on: date = as_of.date() if as_of is not None else settings.today()  # type: ignore[attr-defined]
    try:
        profile_for(profile_name, on)
    except (UnknownProfile, NoProfileVersion) as exc:
        raise click.BadParameter(f"{exc} (known: {', '.join(sorted(PROFILES))})", param_hint="--profile") from None

    from services.listing.entrypoints.import_report import render_summary

    try:
        report = asyncio.run(_run(settings, listings_csv, profile_name, on, dry_run, reservnummer_pattern,
                                  encoding, progress))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileProblem(f"{listings_csv.name}: {type(exc).__name__}: {_safe(exc)}") from None
    click.echo(render_summary(report, listings_csv), nl=False)
    if report_json is not None:
        report_json.write_text(json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        click.echo(f"report written to {report_json}")
    raise SystemExit(1 if report.violations else 0)


class FileProblem(click.ClickException):
    """The extract cannot be read (encoding, header): exit code 2, like a usage error."""

    exit_code = 2


def _safe(exc: Exception) -> str:
    """Errors about the file itself (encoding, header): never a cell's content."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not {exc.encoding} at byte {exc.start} (try --encoding cp1252)"
    return str(exc).splitlines()[0][:200]


async def _run(settings, path, profile_name, on, dry_run, reservnummer_pattern, encoding, progress):
    import asyncpg

    from flk.security.vault import IdentityVault
    from services.listing.entrypoints.import_report import Progress
    from services.listing.service_layer.importer import ImportOptions, ListingImport

    platform = settings.platform
    conn = await asyncpg.connect(platform.database_url.get_secret_value())
    try:
        options = ImportOptions(path=path, profile=profile_name, as_of=on, dry_run=dry_run,
                                reservnummer_pattern=reservnummer_pattern, encoding=encoding)
        run = ListingImport(conn, options, platform.pseudonym_key.get_secret_value().encode(),
                            IdentityVault(platform.identity_vault_key.get_secret_value()),
                            progress=Progress(enabled=progress))
        return await run.run()
    finally:
        await conn.close()
