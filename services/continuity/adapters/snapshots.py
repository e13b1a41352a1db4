"""Writes the day's snapshot to PostgreSQL: ``continuity.aggregate_snapshot`` and ``patient_snapshot``.

The day's rows are replaced as a whole in one transaction, so the last snapshot of a day
stands and an entity that disappeared during the day leaves no stale row. Each aggregate row
carries its follow-up window and how much of it the visit data cover (read from
``continuity.data_coverage`` in the same transaction), so no figure is shown as complete when
it is not. Per-patient rows (for the same-patients comparison) are kept only for the first day
of each month, the last :data:`KEEP_RECENT_DAYS` days and the region's pinned baselines.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from services.continuity.adapters.coverage import read_coverage
from services.continuity.domain.coverage import window_coverage
from services.continuity.service_layer.aggregates import AggregateRow, PatientRow

KEEP_RECENT_DAYS = 35

INSERT = """
INSERT INTO continuity.aggregate_snapshot
    (snapshot_date, level, entity_id, care_unit_id, cohort, listed_patients, eligible_doctor, mean_coc_doctor,
     eligible_total, mean_coc_total, coc_doctor_buckets, coc_total_buckets, sd_coc_doctor, sd_coc_total,
     window_months, window_start, coverage_from, coverage_fraction, window_complete)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
"""

PATIENT_COLUMNS = ("snapshot_date", "region_code", "patient_key", "care_unit_id", "doctor_id", "sabo",
                   "coc_doctor", "coc_total", "rub45")

RETENTION = """
DELETE FROM continuity.patient_snapshot p
WHERE p.region_code = $1
  AND p.snapshot_date < $2
  AND extract(day FROM p.snapshot_date) <> 1
  AND NOT EXISTS (SELECT 1 FROM continuity.baseline b
                  WHERE b.region_code = p.region_code AND b.baseline_date = p.snapshot_date)
"""


async def write_snapshot(pool, snapshot_date: date, rows: Sequence[AggregateRow], *, region_code: str,
                         window_months: int, patients: Sequence[PatientRow] = ()) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            coverage = await read_coverage(conn, region_code)
            windows = {unit: window_coverage(snapshot_date, window_months, coverage.complete_from_for(unit))
                       for unit in {r.care_unit_id for r in rows}}
            await conn.execute("DELETE FROM continuity.aggregate_snapshot WHERE snapshot_date = $1", snapshot_date)
            await conn.executemany(INSERT, [
                (snapshot_date, r.level, r.entity_id, r.care_unit_id, r.cohort, r.listed_patients,
                 r.eligible_doctor, r.mean_coc_doctor, r.eligible_total, r.mean_coc_total,
                 list(r.coc_doctor_buckets), list(r.coc_total_buckets), r.sd_coc_doctor, r.sd_coc_total,
                 window_months, w.window_start, w.complete_from, w.fraction, w.complete)
                for r in rows
                for w in (windows[r.care_unit_id],)
            ])
            await conn.execute("DELETE FROM continuity.patient_snapshot WHERE snapshot_date = $1 "
                               "AND region_code = $2", snapshot_date, region_code)
            if patients:
                await conn.copy_records_to_table(
                    "patient_snapshot", schema_name="continuity", columns=PATIENT_COLUMNS,
                    records=[(snapshot_date, region_code, *p) for p in patients])
            await conn.execute(RETENTION, region_code, snapshot_date - timedelta(days=KEEP_RECENT_DAYS))
