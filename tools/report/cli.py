"""`flk report`: write the goal report (HTML + PDF) from the services' reporting views."""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import click


@click.command("report")
@click.option("--region-code", required=True, help="The region's län code, e.g. 19.")
@click.option("--region-name", help="Shown in the title [default: 'region <code>'].")
@click.option("--baseline", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Compare with this date [default: the latest pinned baseline].")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), help="Now [default: today].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Directory to write into.")
@click.option("--pdf/--no-pdf", default=True, show_default=True, help="Also print a PDF with headless Chromium.")
@click.option("--database-url", envvar="FLK_REPORT_DATABASE_URL", metavar="DSN",
              help="Read as this role: the read-only reporting role (a member of flk_reader, as Grafana) is "
                   "enough and is the one to use [env FLK_REPORT_DATABASE_URL; default: FLK_DATABASE_URL].")
def report(region_code: str, region_name: str | None, baseline: datetime | None, as_of: datetime | None,
           out_dir: Path, pdf: bool, database_url: str | None) -> None:
    """The region's goal report for its board: G1–G4 now and over time against their targets, with 95 %
    intervals, cohort sizes and data coverage; the best and worst units; open care gaps by unit and
    cause; how to read it. Aggregates only. Prints the paths it wrote."""
    import asyncpg

    from tools.report import ChromiumMissing, find_chromium, write_goal_report
    from flk.settings import PlatformSettings

    if pdf and find_chromium() is None:  # say so before reading anything
        raise click.ClickException("Chromium is needed for the PDF (Debian: apt-get install chromium); "
                                   "or pass --no-pdf for the HTML alone")
    try:
        paths = asyncio.run(write_goal_report(
            database_url or PlatformSettings().database_url.get_secret_value(), region_code, out_dir,
            baseline=baseline.date() if baseline else None, as_of=as_of.date() if as_of else None, pdf=pdf,
            region_name=region_name))
    except ChromiumMissing as exc:
        raise click.ClickException(str(exc)) from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise click.ClickException(f"this database role may not read what the report needs ({exc}); use a "
                                   "member of flk_reader, the dashboards' read-only role") from None
    click.echo(f"goal report: {paths.html}")
    if paths.pdf:
        click.echo(f"goal report (PDF): {paths.pdf}")
