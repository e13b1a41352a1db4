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
def report(region_code: str, region_name: str | None, baseline: datetime | None, as_of: datetime | None,
           out_dir: Path, pdf: bool) -> None:
    """The region's goal report for its board: G1–G4 now and over time against their targets, with 95 %
    intervals, cohort sizes and data coverage; the best and worst units; open care gaps by unit and
    cause; how to read it. Aggregates only. Reads FLK_DATABASE_URL."""
    from flk.report import ChromiumMissing, write_goal_report
    from flk.settings import PlatformSettings

    try:
        paths = asyncio.run(write_goal_report(
            PlatformSettings().database_url.get_secret_value(), region_code, out_dir,
            baseline=baseline.date() if baseline else None, as_of=as_of.date() if as_of else None, pdf=pdf,
            region_name=region_name))
    except (LookupError, ChromiumMissing) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"goal report: {paths.html}")
    if paths.pdf:
        click.echo(f"goal report (PDF): {paths.pdf}")
