"""Reads and records data coverage (``continuity.data_coverage``) and a region's pinned baselines."""
from __future__ import annotations

from datetime import date

from services.continuity.domain.coverage import DataCoverage

SOURCES = ("history-import", "configuration", "simulator")

UPSERT = """
INSERT INTO continuity.data_coverage (region_code, care_unit_id, complete_from, source, note)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (region_code, care_unit_id) DO UPDATE
    SET complete_from = EXCLUDED.complete_from, source = EXCLUDED.source, note = EXCLUDED.note,
        recorded_at = now()
"""


async def record_coverage(conn, region_code: str, complete_from: date, *, source: str,
                          care_unit_id: str = "", note: str = "") -> None:
    """Say that the region's (or one unit's) visit data are complete from ``complete_from``."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    await conn.execute(UPSERT, region_code, care_unit_id, complete_from, source, note)


async def clear_coverage(conn, region_code: str, care_unit_id: str = "") -> bool:
    """Forget a recorded start (the region's, or one unit's exception); whether one was there."""
    result = await conn.execute(
        "DELETE FROM continuity.data_coverage WHERE region_code = $1 AND care_unit_id = $2",
        region_code, care_unit_id)
    return result != "DELETE 0"


async def read_coverage(conn, region_code: str) -> DataCoverage:
    rows = await conn.fetch(
        "SELECT care_unit_id, complete_from FROM continuity.data_coverage WHERE region_code = $1", region_code)
    region = next((r["complete_from"] for r in rows if r["care_unit_id"] == ""), None)
    units = {r["care_unit_id"]: r["complete_from"] for r in rows if r["care_unit_id"]}
    return DataCoverage(region_code, region, units)


async def read_coverage_rows(conn, region_code: str) -> list[dict]:
    """Every recorded start of the region: its own (care_unit_id '') and its units' exceptions."""
    rows = await conn.fetch("SELECT care_unit_id, complete_from, source, note, recorded_at "
                            "FROM continuity.data_coverage WHERE region_code = $1 ORDER BY care_unit_id",
                            region_code)
    return [dict(r) for r in rows]


async def pin_baseline(conn, region_code: str, baseline_date: date, note: str = "") -> None:
    """Declare a baseline date of the region's G2/G4 comparison: its per-patient snapshot rows are kept
    (for the same-patients comparison) and the dashboards offer it first."""
    await conn.execute(
        "INSERT INTO continuity.baseline (region_code, baseline_date, note) VALUES ($1, $2, $3) "
        "ON CONFLICT (region_code, baseline_date) DO UPDATE SET note = EXCLUDED.note, pinned_at = now()",
        region_code, baseline_date, note)
