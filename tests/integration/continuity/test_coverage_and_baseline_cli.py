"""`flk continuity coverage ...` and `flk continuity baseline ...` on a real PostgreSQL."""
from __future__ import annotations

import asyncio

from click.testing import CliRunner

from services.continuity.entrypoints.cli import continuity


async def _cli(dsn: str, *args: str):
    return await asyncio.to_thread(CliRunner().invoke, continuity, list(args), env={"FLK_DATABASE_URL": dsn})


async def test_coverage_is_set_shown_with_the_first_complete_window_and_cleared_by_the_cli(migrated_database):
    missing = await _cli(migrated_database, "coverage", "show", "--region-code", "01")
    assert "no data coverage recorded" in missing.output

    done = await _cli(migrated_database, "coverage", "set", "--region-code", "01", "--complete-from", "2024-01-01",
                      "--note", "warehouse extract")
    assert done.exit_code == 0, done.output
    shown = await _cli(migrated_database, "coverage", "show", "--region-code", "01")
    assert ("region 01: visit data complete from 2024-01-01 (configuration; warehouse extract); "
            "18-month windows complete as of 2025-07-01 and later") in shown.output

    cleared = await _cli(migrated_database, "coverage", "clear", "--region-code", "01")
    again = await _cli(migrated_database, "coverage", "clear", "--region-code", "01")
    assert cleared.exit_code == 0 and again.exit_code == 1 and "nothing recorded" in again.output


async def test_baselines_are_pinned_and_listed_latest_first(migrated_database):
    for day in ("2025-01-01", "2025-06-30"):
        pinned = await _cli(migrated_database, "baseline", "pin", "--region-code", "01", "--date", day,
                            "--note", f"board {day}")
        assert pinned.exit_code == 0, pinned.output
    listed = await _cli(migrated_database, "baseline", "list", "--region-code", "01")
    lines = listed.output.splitlines()
    assert lines[0].startswith("2025-06-30") and lines[1].startswith("2025-01-01") and "board 2025-01-01" in lines[1]
