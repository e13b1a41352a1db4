"""continuity.goal_comparison and goal_series against the pure reference (domain/uncertainty.py),
with the coverage flags that decide whether a figure may be read as a goal figure."""
from __future__ import annotations

import random
from datetime import date
from urllib.parse import urlparse

import asyncpg
import pytest

from services.continuity.adapters.coverage import record_coverage
from services.continuity.adapters.snapshots import write_snapshot
from services.continuity.domain.uncertainty import (
    change_interval,
    mean_interval,
    moments,
    panel_change_interval,
    verdict,
)
from services.continuity.service_layer.aggregates import Summary, aggregate, patient_rows

pytestmark = pytest.mark.integration

REGION = "19"
UNIT_A, UNIT_B = "SE2321000016-VC000001", "SE2321000016-VC000002"
DOCTOR = "SE2321000016-L00001"
BASELINE, NOW = date(2026, 5, 1), date(2026, 11, 1)


def cohort(seed: int, n: int, mean: float) -> dict[bytes, Summary]:
    """n eligible patients (unit A or B, every tenth in SÄBO) with COC around ``mean``."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        doctor = rng.betavariate(5 * mean, 5 * (1 - mean))
        total = rng.betavariate(4 * mean, 4 * (1 - mean))
        out[f"pk1_{i:06d}".encode()] = Summary(UNIT_A if i % 3 else UNIT_B, DOCTOR, i % 10 == 0,
                                              True, doctor, True, total)
    return out


async def snapshot(pool, day: date, summaries: dict[bytes, Summary]) -> None:
    await write_snapshot(pool, day, aggregate(summaries.values(), REGION), region_code=REGION, window_months=18,
                         patients=patient_rows(summaries.items()))


async def comparison(conn, **where) -> dict:
    rows = await conn.fetch("SELECT * FROM continuity.goal_comparison($1, $2)", BASELINE, NOW)
    [row] = [r for r in rows if all(r[k] == v for k, v in where.items())]
    return dict(row)


@pytest.fixture
async def pool(migrated_database):
    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_goal_comparison_equals_the_pure_reference_for_the_cross_section_and_the_same_patients(pool):
    base = cohort(1, 400, 0.40)
    now = {**cohort(2, 300, 0.46), **{f"pk1_new_{i}".encode(): s for i, s in cohort(3, 100, 0.46).items()}}
    async with pool.acquire() as conn:
        await record_coverage(conn, REGION, date(2023, 1, 1), source="configuration")
        await conn.execute("INSERT INTO continuity.baseline (region_code, baseline_date) VALUES ($1, $2)",
                           REGION, BASELINE)
    await snapshot(pool, BASELINE, base)
    await snapshot(pool, NOW, now)
    async with pool.acquire() as conn:
        row = await comparison(conn, level="region", cohort="all", contacts="doctor")
        series = await conn.fetchrow("SELECT * FROM continuity.goal_series WHERE snapshot_date = $1 "
                                     "AND level = 'region' AND cohort = 'all' AND contacts = 'doctor'", NOW)

    m0 = moments(s.doctor_coc for s in base.values())
    m1 = moments(s.doctor_coc for s in now.values())
    expected = change_interval(m0, m1)
    pairs = [(base[k].doctor_coc, s.doctor_coc) for k, s in now.items() if k in base]
    panel = panel_change_interval(pairs)
    assert (row["goal"], row["target_change"], row["baseline_n"], row["now_n"]) == ("G2", 0.2, 400, 400)
    assert row["comparable"] and row["baseline_complete"] and row["now_complete"] and row["window_months"] == 18
    assert row["baseline_coverage"] == row["now_coverage"] == 1.0
    assert row["change"] == pytest.approx(expected.estimate)
    assert (row["change_ci_low"], row["change_ci_high"]) == pytest.approx((expected.low, expected.high))
    assert row["significant"] == expected.excludes_zero
    assert row["verdict"] == verdict(0.2, expected, baseline=m0, now=m1, comparable=True)
    assert row["panel_n"] == len(pairs) == 300
    assert row["panel_change"] == pytest.approx(panel.estimate)
    assert (row["panel_ci_low"], row["panel_ci_high"]) == pytest.approx((panel.low, panel.high))
    now_interval = mean_interval(m1)
    assert (row["now_ci_low"], row["now_ci_high"]) == pytest.approx((now_interval.low, now_interval.high))
    assert (series["ci_low"], series["ci_high"]) == pytest.approx((now_interval.low, now_interval.high))


async def test_incomplete_baseline_window_is_not_comparable(pool):
    """Visit data complete from 2025-03-01: the baseline's 18-month window (from 2024-11-01) is only
    covered for 427 of its 546 days; now's (from 2025-05-01) is complete. The change is computed but is no goal figure."""
    async with pool.acquire() as conn:
        await record_coverage(conn, REGION, date(2025, 3, 1), source="history-import")
    await snapshot(pool, BASELINE, cohort(1, 400, 0.40))
    await snapshot(pool, NOW, cohort(2, 400, 0.55))
    async with pool.acquire() as conn:
        row = await comparison(conn, level="region", cohort="all", contacts="doctor")
    assert (row["baseline_complete"], row["now_complete"], row["comparable"]) == (False, True, False)
    assert 0.77 < row["baseline_coverage"] < 0.79 and row["now_coverage"] == 1.0
    assert row["verdict"] == "incomplete_window"


async def test_without_recorded_coverage_no_window_is_complete(pool):
    await snapshot(pool, BASELINE, cohort(1, 100, 0.40))
    await snapshot(pool, NOW, cohort(2, 100, 0.40))
    async with pool.acquire() as conn:
        row = await comparison(conn, level="region", cohort="all", contacts="doctor")
    assert (row["baseline_coverage"], row["now_complete"], row["verdict"]) == (None, False, "incomplete_window")


async def test_a_unit_whose_data_start_later_is_incomplete_while_the_others_are_complete(pool):
    async with pool.acquire() as conn:
        await record_coverage(conn, REGION, date(2023, 1, 1), source="configuration")
        await record_coverage(conn, REGION, date(2025, 9, 1), source="configuration", care_unit_id=UNIT_B)
    await snapshot(pool, BASELINE, cohort(1, 400, 0.40))
    await snapshot(pool, NOW, cohort(2, 400, 0.40))
    async with pool.acquire() as conn:
        a = await comparison(conn, level="unit", entity_id=UNIT_A, cohort="all", contacts="doctor")
        b = await comparison(conn, level="unit", entity_id=UNIT_B, cohort="all", contacts="doctor")
        region = await comparison(conn, level="region", cohort="all", contacts="doctor")
    assert a["comparable"] and not b["comparable"]
    assert not region["comparable"]  # the region's figure includes unit B's short window


async def test_g4_needs_a_significant_increase_and_small_sabo_cohorts_get_no_verdict(pool):
    async with pool.acquire() as conn:
        await record_coverage(conn, REGION, date(2023, 1, 1), source="configuration")
    await snapshot(pool, BASELINE, cohort(1, 200, 0.40))  # 20 SÄBO residents
    await snapshot(pool, NOW, cohort(2, 200, 0.60))
    async with pool.acquire() as conn:
        g4 = await comparison(conn, level="region", cohort="sabo", contacts="doctor")
        other = await comparison(conn, level="region", cohort="sabo", contacts="total")
    assert (g4["goal"], g4["target_change"], g4["baseline_n"]) == ("G4", 0.0, 20)
    assert g4["verdict"] == "too_few_patients"
    assert (other["goal"], other["verdict"]) == (None, None)


async def test_per_patient_rows_are_kept_for_month_starts_recent_days_and_pinned_baselines(pool):
    days = [date(2026, 3, 1), date(2026, 3, 17), date(2026, 4, 9), date(2026, 11, 20), date(2026, 12, 1)]
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO continuity.baseline (region_code, baseline_date) VALUES ($1, $2)",
                           REGION, date(2026, 4, 9))
    for day in days:
        await snapshot(pool, day, cohort(day.toordinal(), 5, 0.4))
    async with pool.acquire() as conn:
        kept = [r[0] for r in await conn.fetch(
            "SELECT DISTINCT snapshot_date FROM continuity.patient_snapshot ORDER BY 1")]
        aggregates = await conn.fetchval("SELECT count(DISTINCT snapshot_date) FROM continuity.aggregate_snapshot")
    assert kept == [date(2026, 3, 1), date(2026, 4, 9), date(2026, 11, 20), date(2026, 12, 1)]
    assert aggregates == len(days)  # the aggregates are kept for every day


async def test_grafanas_role_can_compare_but_cannot_read_a_patients_values(pool, infra, migrated_database):
    await snapshot(pool, BASELINE, cohort(1, 50, 0.4))
    await snapshot(pool, NOW, cohort(2, 50, 0.4))
    database = urlparse(migrated_database).path.lstrip("/")
    conn = await asyncpg.connect(infra.dsn("readonly", database=database))
    try:
        assert await conn.fetchval("SELECT count(*) FROM continuity.goal_comparison($1)", BASELINE) > 0
        assert await conn.fetchval("SELECT count(*) FROM continuity.goal_series") > 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT patient_key FROM continuity.patient_snapshot")
    finally:
        await conn.close()
