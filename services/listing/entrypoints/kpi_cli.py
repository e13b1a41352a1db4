"""``flk listing kpi-snapshot``: store the goal KPIs (G1, G3) of a day for the dashboards' time
series (``listing.record_goal_kpis``, migration 0002). The running service (`flk listing run`)
stores every finished day itself (adapters/kpi_snapshots.py); this command is for backfills:
``--from/--to`` computes past days from the register's history (periods are never deleted)."""
from __future__ import annotations

from datetime import timedelta

import click

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.command("kpi-snapshot")
@click.option("--on", "on", type=_DATE, default=None, help="the day to store (default: today, Europe/Stockholm)")
@click.option("--from", "start", type=_DATE, default=None, help="backfill: first day")
@click.option("--to", "end", type=_DATE, default=None, help="backfill: last day (default: today)")
def kpi_snapshot(on: object, start: object, end: object) -> None:
    """Store G1/G3 per region, unit and list for a day (or a range of days) in listing.goal_kpi_*_daily."""
    import asyncio

    from services.listing.settings import ListingSettings

    settings = ListingSettings()
    today = settings.today()
    if start is not None:
        first, last = start.date(), end.date() if end is not None else today  # type: ignore[attr-defined]
    else:
        first = last = on.date() if on is not None else today  # type: ignore[attr-defined]
    if last < first:
        raise click.BadParameter("--to is before --from")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]

    async def store() -> None:
        import asyncpg

        conn = await asyncpg.connect(settings.platform.database_url.get_secret_value())
        try:
            for day in days:
                async with conn.transaction():
                    rows = await conn.fetchval("SELECT listing.record_goal_kpis($1::date)", day)
                click.echo(f"{day.isoformat()}: {rows} KPI rows stored")
        finally:
            await conn.close()

    asyncio.run(store())



