"""The service stores the goal KPIs (G1, G3) of every finished day itself.

Grafana's time series read ``listing.goal_kpi_*_history`` (migration 0002): the stored days plus
*today* computed live. So the running service stores each day once it is over — the day before
today, and any days it missed while it was down (up to ``catch_up_days`` back, counted from the
last stored day; a fresh register starts with yesterday) — and never stores today (that would
freeze today's live figures until the next run). ``flk listing kpi-snapshot --from/--to`` stays
for backfills further back. Several replicas may run this: a transaction-level advisory lock
lets one of them store a round, the others skip it.
"""
from __future__ import annotations

from datetime import date, timedelta

#: pg_try_advisory_xact_lock key of a snapshot round (any constant shared by the replicas)
_LOCK_KEY = 0x6B70_6931  # "kpi1"


def finished_days_to_store(today: date, last_stored: date | None, catch_up_days: int) -> list[date]:
    """The finished days not stored yet, oldest first: after ``last_stored`` up to yesterday, at
    most ``catch_up_days`` of them (the most recent); only yesterday when nothing is stored."""
    yesterday = today - timedelta(days=1)
    if catch_up_days < 1:
        return []
    if last_stored is None:
        return [yesterday]
    first = max(last_stored + timedelta(days=1), today - timedelta(days=catch_up_days))
    return [first + timedelta(days=n) for n in range((yesterday - first).days + 1)]


async def store_finished_days(pool, today: date, catch_up_days: int) -> list[date]:
    """Store the finished days that are due (see :func:`finished_days_to_store`) in one transaction;
    returns them ([] when another replica holds the round's lock or nothing is due)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK_KEY):
            return []
        last = await conn.fetchval("SELECT max(snapshot_on) FROM listing.goal_kpi_region_daily "
                                   "WHERE snapshot_on < $1", today)
        days = finished_days_to_store(today, last, catch_up_days)
        for day in days:
            await conn.fetchval("SELECT listing.record_goal_kpis($1::date)", day)
        return days
