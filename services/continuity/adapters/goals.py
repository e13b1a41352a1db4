"""Reads of the G2/G4 goal comparison (``continuity.goal_comparison``) and the pinned baselines, for the
API, the CLI, the main job and the report: one place that knows the SQL."""
from __future__ import annotations

from datetime import date
from typing import Any


async def pinned_baselines(conn, region_code: str) -> list[dict[str, Any]]:
    """The region's pinned baselines, latest first."""
    rows = await conn.fetch("SELECT baseline_date, note, pinned_at FROM continuity.baseline WHERE region_code = $1 "
                            "ORDER BY baseline_date DESC", region_code)
    return [dict(r) for r in rows]


async def latest_pinned_baseline(conn, region_code: str) -> date | None:
    return await conn.fetchval("SELECT max(baseline_date) FROM continuity.baseline WHERE region_code = $1",
                               region_code)


async def goal_comparison(conn, region_code: str, baseline: date, now: date | None = None, *,
                          units: bool = False) -> list[dict[str, Any]]:
    """The region's rows of ``continuity.goal_comparison(baseline, now)``, goal rows first; with ``units``
    its units' rows too (level 'unit': the snapshots hold one region, the worker's)."""
    rows = await conn.fetch(
        "SELECT * FROM continuity.goal_comparison($1, $2) g "
        "WHERE (g.level = 'region' AND g.entity_id = $3) OR (g.level = 'unit' AND $4) "
        "ORDER BY g.level, g.goal NULLS LAST, g.entity_id, g.cohort, g.contacts",
        baseline, now, region_code, units)
    return [dict(r) for r in rows]
