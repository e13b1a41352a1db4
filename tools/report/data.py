"""What the goal report shows, read from the services' reporting views — aggregates only.

The headline G1–G4 come from the same readers as the main job's summary (``tools.mainjob.goals``:
``continuity.goal_comparison``, ``continuity.data_coverage``; G1/G3 as stored on the day in
``listing.goal_kpi_region_daily``, else ``listing.goal_kpi_region_on``); the series from
``listing.goal_kpi_region_history`` and ``continuity.goal_series``; units from
``continuity.goal_comparison`` (unit rows) and ``listing.goal_kpi_unit_daily`` / ``goal_kpi_unit_on``
(names from ``listing.care_unit`` only where the role may read it); open care gaps per unit and cause
from ``notifier.care_gap_history``. All of these are granted to the read-only reporting role
(``flk_reader``) the dashboards use; nothing here is at patient level.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from tools.mainjob.goals import (
    Coverage,
    Estimate,
    G3Population,
    Goal,
    goals_from,
    read_continuity,
    read_coverage,
    read_g3_population,
    read_listing_shares,
)


@dataclass(frozen=True)
class SharePoint:
    day: date
    g1: float | None
    population: int
    g3: float | None
    g3_residents: int  # SÄBO residents who get their main care there (or it is not recorded)


@dataclass(frozen=True)
class IndexPoint:
    day: date
    n: int
    mean: float | None
    low: float | None
    high: float | None
    complete: bool
    coverage: float | None


@dataclass(frozen=True)
class UnitFigure:
    unit_id: str
    name: str
    now_n: int | None
    now_mean: float | None
    now_low: float | None
    now_high: float | None
    change: float | None
    change_low: float | None
    change_high: float | None
    verdict: str | None
    listed: int | None = None
    g1_share: float | None = None
    g3_residents: int | None = None  # as SharePoint.g3_residents
    g3_share: float | None = None


@dataclass(frozen=True)
class GapCount:
    unit_id: str
    name: str
    cause: str
    open: int


@dataclass
class ReportData:
    region_code: str
    region_name: str
    baseline: date | None  # None: the region has no pinned baseline yet
    as_of: date
    generated_at: datetime
    coverage: Coverage
    goals: list[Goal]
    shares: list[SharePoint] = field(default_factory=list)
    #: (cohort, contacts) -> points; ('all', 'doctor'), ('all', 'total'), ('sabo', 'doctor')
    series: dict[tuple[str, str], list[IndexPoint]] = field(default_factory=dict)
    units: list[UnitFigure] = field(default_factory=list)
    gaps: list[GapCount] = field(default_factory=list)
    #: who G3 (and G4) count on ``as_of``; None when it was not read
    g3_population: G3Population | None = None


async def _exists(conn, qualified: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified)


async def _readable(conn, qualified: str) -> bool:
    """Whether this role may read the table (the read-only reporting role may not read the register's)."""
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL AND has_table_privilege($1, 'SELECT')",
                               qualified)


async def read_unit_shares_on(conn, region_code: str, day: date) -> dict[str, dict]:
    """Each of the region's units' G1/G3 figures on a day (stored that day, else computed), by HSA-id."""
    columns = "care_unit_id, listed, g1_share_of_listed, g3_residents, g3_share"
    rows = await conn.fetch(f"SELECT {columns} FROM listing.goal_kpi_unit_daily "
                            "WHERE region_code = $1 AND snapshot_on = $2", region_code, day)
    if not rows:
        rows = await conn.fetch(f"SELECT {columns} FROM listing.goal_kpi_unit_on($2) WHERE region_code = $1",
                                region_code, day)
    return {r["care_unit_id"]: dict(r) for r in rows}


async def read_report_data(conn, region_code: str, *, baseline: date | None = None, as_of: date | None = None,
                           region_name: str | None = None) -> ReportData:
    """Everything the report shows for one region (``baseline`` default: the latest pinned one; a region
    without one gets G1/G3 now and says how to pin one). Reads only what the read-only reporting role
    (``flk_reader``, as Grafana) may read; unit names only where the role may read the unit register."""
    from tools.mainjob.goals import local_today
    from services.continuity.adapters.goals import goal_comparison, latest_pinned_baseline

    as_of = as_of or local_today()
    if baseline is None:
        baseline = await latest_pinned_baseline(conn, region_code)
    names = {}
    if await _readable(conn, "listing.care_unit"):
        names = {r["hsa_id"]: r["name"] for r in await conn.fetch(
            "SELECT hsa_id, name FROM listing.care_unit WHERE region_code = $1", region_code)}
    continuity = await read_continuity(conn, region_code, baseline) if baseline else {}
    months = next((r["window_months"] for r in continuity.values() if r.get("window_months")), None)
    data = ReportData(
        region_code=region_code, region_name=region_name or f"region {region_code}", baseline=baseline, as_of=as_of,
        generated_at=datetime.now().astimezone(), coverage=await read_coverage(conn, region_code, months),
        goals=goals_from(await read_listing_shares(conn, region_code, baseline) if baseline else {},
                         await read_listing_shares(conn, region_code, as_of), continuity))
    data.g3_population = await read_g3_population(conn, region_code, as_of)
    data.shares = [SharePoint(r["snapshot_on"], _f(r["g1_share_of_population"]), r["population"], _f(r["g3_share"]),
                              r["g3_residents"])
                   for r in await conn.fetch(
                       "SELECT snapshot_on, g1_share_of_population, population, g3_share, g3_residents "
                       "FROM listing.goal_kpi_region_history WHERE region_code = $1 AND snapshot_on <= $2 "
                       "ORDER BY snapshot_on", region_code, as_of)]
    for r in await conn.fetch(
            "SELECT cohort, contacts, snapshot_date, n, mean, ci_low, ci_high, window_complete, coverage_fraction "
            "FROM continuity.goal_series WHERE level = 'region' AND entity_id = $1 AND snapshot_date <= $2 "
            "ORDER BY snapshot_date", region_code, as_of):
        data.series.setdefault((r["cohort"], r["contacts"]), []).append(IndexPoint(
            r["snapshot_date"], r["n"], r["mean"], r["ci_low"], r["ci_high"], r["window_complete"],
            r["coverage_fraction"]))
    listing_units = await read_unit_shares_on(conn, region_code, as_of)
    for r in (await goal_comparison(conn, region_code, baseline, as_of, units=True)) if baseline else []:
        if r["level"] != "unit" or r["cohort"] != "all" or r["contacts"] != "doctor":
            continue
        lu = listing_units.get(r["entity_id"])
        data.units.append(UnitFigure(
            r["entity_id"], names.get(r["entity_id"], r["entity_id"]), r["now_n"], r["now_mean"], r["now_ci_low"],
            r["now_ci_high"], r["change"], r["change_ci_low"], r["change_ci_high"], r["verdict"],
            lu["listed"] if lu else None, _f(lu["g1_share_of_listed"]) if lu else None,
            lu["g3_residents"] if lu else None, _f(lu["g3_share"]) if lu else None))
    region_units = set(names) | set(listing_units)
    if await _exists(conn, "notifier.care_gap_history"):
        # open at the end of the as-of day (Swedish time), counted per unit and cause: no gap is shown alone
        data.gaps = [GapCount(r["care_unit_id"], names.get(r["care_unit_id"], r["care_unit_id"]), r["cause"], r["n"])
                     for r in await conn.fetch(
                         "SELECT care_unit_id, cause, count(*) AS n FROM notifier.care_gap_history "
                         "WHERE (opened_at AT TIME ZONE 'Europe/Stockholm')::date <= $1 "
                         "AND (resolved_at IS NULL OR (resolved_at AT TIME ZONE 'Europe/Stockholm')::date > $1) "
                         "GROUP BY 1, 2 ORDER BY 1, 2", as_of)
                     if not region_units or r["care_unit_id"] in region_units]
    return data


def _f(value) -> float | None:
    return None if value is None else float(value)
