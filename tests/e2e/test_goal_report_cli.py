"""`flk report` end to end on aggregate rows alone: a throwaway database holds a year of the listing
service's stored G1/G3 days, the continuity worker's snapshots (written by its own snapshot writer, the
first ones with incomplete windows), a pinned baseline, data coverage and care gaps; the command runs as
the dashboards' read-only role, and its HTML is opened in headless Chromium (charts drawn, captions
there) and its PDF checked.

``python -m tests.e2e.test_goal_report_cli DSN`` fills a migrated database the same way, for a look.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.browser import chromium_binaries, goal_report_as_seen

pytestmark = pytest.mark.e2e

REGION = "19"
BASELINE = date(2026, 1, 1)
AS_OF = date(2026, 11, 1)
COMPLETE_FROM = date(2024, 6, 1)  # 18-month windows are complete from 2025-12-01
SNAPSHOTS = [date(2025, 6 + m, 1) if m < 7 else date(2026, m - 6, 1) for m in range(18)]  # 2025-06 … 2026-11
#: (HSA-id, name, eligible patients, mean doctor COC at the baseline) — one unit with a tiny cohort
UNITS = [("SE2321000016-VC0001", "Vårdcentralen Norr", 2400, 0.42),
         ("SE2321000016-VC0002", "Vårdcentralen Söder", 1800, 0.35),
         ("SE2321000016-VC0003", "Vårdcentralen Öster", 950, 0.47),
         ("SE2321000016-VC0004", "Vårdcentralen Väster", 1300, 0.30),
         ("SE2321000016-VC0005", "Vårdcentralen Skogen", 12, 0.50)]
PATIENT_KEY = "pk1_report_test_patient_"


def _aggregate(level, entity, unit, cohort, n, mean, sd=0.3):
    from services.continuity.service_layer.aggregates import AggregateRow

    return AggregateRow(level, entity, unit, cohort, listed_patients=int(n * 1.6), eligible_doctor=n,
                        mean_coc_doctor=mean, eligible_total=int(n * 1.3), mean_coc_total=mean * 0.45,
                        coc_doctor_buckets=(n // 10,) * 10, coc_total_buckets=(n // 10,) * 10,
                        sd_coc_doctor=sd, sd_coc_total=sd * 0.6)


def _snapshot_rows(i: int) -> list:
    rise = 1 + 0.012 * max(i - 7, 0)  # continuity rises after the baseline
    start = 0.75 + 0.03 * min(i, 7)   # incomplete windows count fewer visits: lower, rising while they fill
    rows = [_aggregate("region", REGION, "", "all", 6400, 0.39 * rise * start),
            _aggregate("region", REGION, "", "sabo", 420, 0.44 * (1 + 0.02 * max(i - 7, 0)) * start, sd=0.28)]
    rows += [_aggregate("unit", hsa, hsa, "all", n, mean * rise * start) for hsa, _, n, mean in UNITS]
    return rows


async def fill_with_aggregates(dsn: str) -> None:
    """A region's year as the services would have stored it: aggregates only, plus care gaps."""
    import asyncpg

    from services.continuity.adapters.coverage import pin_baseline, record_coverage
    from services.continuity.adapters.snapshots import write_snapshot

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.executemany("INSERT INTO listing.care_unit (hsa_id, name, region_code) VALUES ($1, $2, $3)",
                                   [(hsa, name, REGION) for hsa, name, _, _ in UNITS])
            await record_coverage(conn, REGION, COMPLETE_FROM, source="history-import")
            await pin_baseline(conn, REGION, BASELINE, "before the FLK reform")
            for i, day in enumerate(SNAPSHOTS):
                population, sabo = 280_000 + 150 * i, 2900 + 5 * i
                g1, g3 = 0.41 + 0.006 * i, 0.63 + 0.008 * i
                await conn.execute(
                    "INSERT INTO listing.goal_kpi_region_daily (snapshot_on, region_code, population, listed, "
                    "with_named_flk, listed_with_named_flk, listed_declined, listed_on_fictive_list_only, "
                    "listed_without_flk, g1_share_of_population, g1_share_of_listed, g1_target, sabo_residents, "
                    "sabo_with_named_flk, sabo_declined, sabo_main_care_elsewhere, g3_residents, g3_with_named_flk, "
                    "g3_declined, g3_main_care_unknown, g3_share, g3_target) "
                    "VALUES ($1, $2, $3, $4, $5, $5, 900, 3000, $4::bigint - $5::bigint - 3900, $6, $7, 0.55, $8, $9, 20, "
                    "0, $8, $9, 20, 0, $10, 0.80)",
                    day, REGION, population, int(population * 0.97), int(population * g1), round(g1, 4),
                    round(g1 / 0.97, 4), sabo, int(sabo * g3), round(g3, 4))
            for k, (hsa, _, n, _) in enumerate(UNITS):
                listed = max(n * 4, 40)
                await conn.execute(
                    "INSERT INTO listing.goal_kpi_unit_daily (snapshot_on, care_unit_id, region_code, listed, "
                    "with_named_flk, declined, on_fictive_list_only, without_flk, g1_share_of_listed, g1_target, "
                    "sabo_residents, sabo_with_named_flk, sabo_declined, sabo_main_care_elsewhere, g3_residents, "
                    "g3_with_named_flk, g3_declined, g3_main_care_unknown, g3_share, g3_target) "
                    "VALUES ($1, $2, $3, $4, $5, 0, 0, $4::bigint - $5::bigint, $6, 0.55, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0.80)",
                    AS_OF, hsa, REGION, listed, int(listed * (0.45 + 0.05 * k)), round(0.45 + 0.05 * k, 4))
            opened = datetime(2026, 9, 1, 8, tzinfo=timezone.utc)
            gaps = [(UNITS[0][0], "never_assigned", 5, False, 14), (UNITS[0][0], "doctor_left", 4, False, 6),
                    (UNITS[1][0], "locum_list", 4, True, 9), (UNITS[3][0], "relisted", 5, False, 3),
                    (UNITS[3][0], "never_assigned", 4, True, 4)]
            await conn.executemany(
                "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [(uuid.uuid4(), f"{PATIENT_KEY}{unit}_{cause}_{j}", unit, cause, rub, sabo, opened)
                 for unit, cause, rub, sabo, count in gaps for j in range(count)])
            await conn.execute(  # resolved before the as-of date: not open any more
                "INSERT INTO notifier.care_gap (gap_id, patient_key, care_unit_id, cause, rub, sabo, opened_at, "
                "resolved_at, resolution) VALUES ($1, $2, $3, 'never_assigned', 5, false, $4, $5, 'assigned')",
                uuid.uuid4(), f"{PATIENT_KEY}resolved", UNITS[2][0], opened, opened + timedelta(days=10))
        for i, day in enumerate(SNAPSHOTS):
            await write_snapshot(pool, day, _snapshot_rows(i), region_code=REGION, window_months=18)
    finally:
        await pool.close()


def run_report(dsn: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("FLK_REPORT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "report", "--region-code", REGION, "--region-name", "Region Västmanland",
         "--as-of", AS_OF.isoformat(), "--out", str(out), "--database-url", dsn, *extra],
        capture_output=True, text=True, timeout=300, env=env, check=False)


async def test_flk_report_on_stored_aggregates_opens_in_a_browser_with_its_charts_and_prints_a_pdf(
        infra, migrated_database, tmp_path):
    chromium_binaries()
    await fill_with_aggregates(migrated_database)
    readonly = infra.dsn("readonly", database=migrated_database.rsplit("/", 1)[1])
    result = await asyncio.to_thread(run_report, readonly, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    html = tmp_path / "out" / f"goal-report-{REGION}-{AS_OF}.html"
    pdf = html.with_suffix(".pdf")
    assert result.stdout.splitlines() == [f"goal report: {html}", f"goal report (PDF): {pdf}"]
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000

    seen = await asyncio.to_thread(goal_report_as_seen, html, tmp_path / "profile")
    assert seen["title"] == f"Goal report — Region Västmanland — {AS_OF}"
    assert seen["headings"] == ["The four goals", "Over time", "Care units", "Care gaps", "How to read this"]
    captions = [c for _, _, c in seen["charts"]]
    assert len(seen["charts"]) == 5, captions     # G1/G3, G2, G4, the units, the care gaps
    assert all(width > 300 and paths > 10 for width, paths, _ in seen["charts"]), seen["charts"]
    assert [c.split(":")[0] for c in captions[:3]] == ["G1 and G3", "G2", "G4"]
    assert captions[3].startswith("Every unit's mean COC") and captions[4].startswith("Open care gaps by unit")
    text = seen["text"]
    assert f"baseline {BASELINE}" in text and "visit data complete from 2024-06-01 (history-import)" in text
    assert "Period 2025-06-01 – 2026-11-01" in text
    assert len(seen["verdicts"]) == 5 and seen["verdicts"][0] == "not met"   # G1 = 51.2 % < 55 %
    assert "G2 — mean COC" in html.read_text(encoding="utf-8")

    page = html.read_text(encoding="utf-8")
    assert ">incomplete windows<" in page                       # the first snapshots' windows, shaded apart
    assert "SE2321000016-VC0005 (n = 12)" in text and "Not ranked" in text   # the tiny cohort: marked, not ranked
    assert "Vårdcentralen Norr" not in page     # the read-only role may not read the unit register: HSA-ids
    assert PATIENT_KEY not in page and "<script" not in page
    assert "never assigned" in page and ">18<" in page      # open gaps by cause (the resolved one not counted)


async def test_flk_report_says_no_data_yet_for_an_empty_region_and_needs_chromium_only_for_the_pdf(
        infra, migrated_database, tmp_path):
    readonly = infra.dsn("readonly", database=migrated_database.rsplit("/", 1)[1])
    result = await asyncio.to_thread(run_report, readonly, tmp_path, "--no-pdf")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / f"goal-report-{REGION}-{AS_OF}.html").read_text(encoding="utf-8")
    assert "no baseline pinned yet" in page and "No stored G1/G3 days yet" in page
    assert "No continuity snapshots yet" in page and "No open care gaps" in page
    assert not list(tmp_path.glob("*.pdf"))


if __name__ == "__main__":  # python -m tests.e2e.test_goal_report_cli DSN: fill a migrated database
    asyncio.run(fill_with_aggregates(sys.argv[1]))
