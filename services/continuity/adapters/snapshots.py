"""Writes the day's aggregate snapshot to PostgreSQL (``continuity.aggregate_snapshot``).

The day's rows are replaced as a whole in one transaction, so the last snapshot of a day
stands and an entity that disappeared during the day leaves no stale row.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.continuity.service_layer.aggregates import AggregateRow

INSERT = """
INSERT INTO continuity.aggregate_snapshot
    (snapshot_date, level, entity_id, care_unit_id, cohort, listed_patients, eligible_doctor, mean_coc_doctor,
     eligible_total, mean_coc_total, coc_doctor_buckets, coc_total_buckets)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""


async def write_snapshot(pool, snapshot_date: date, rows: Sequence[AggregateRow]) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("DELETE FROM continuity.aggregate_snapshot WHERE snapshot_date = $1", snapshot_date)
            await conn.executemany(INSERT, [
                (snapshot_date, r.level, r.entity_id, r.care_unit_id, r.cohort, r.listed_patients,
                 r.eligible_doctor, r.mean_coc_doctor, r.eligible_total, r.mean_coc_total,
                 list(r.coc_doctor_buckets), list(r.coc_total_buckets))
                for r in rows
            ])
