"""The set-based goal KPIs (migration 0008) give exactly what the per-person definition of 0004 gave:
for every person, every region, unit and list, on many days of varied synthetic registers —
re-listings, ended listings, changes of doctor, fictive lists, stale assignments, declines opened and
closed, SÄBO spells with every main-care qualifier, deaths, emigrations and moves — on days a period
starts or ends (and the day before each): a sample of the days a SÄBO residence, a decline or a
population status starts or ends, and one of the days a listing or an FLK assignment does.

A stored snapshot (migration 0010: one pass over the persons for the region, unit and list rows) equals
both the live views' functions (0008) and the per-person definition, on the same days.

The 0004 functions are recreated from the migration file as ``listing.*_reference``
(tests/support/goal_kpi_reference.py).
"""
from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from tests.support.goal_kpi_reference import create_reference_functions
from tests.support.synthetic_register import fill_register

#: the days compared: period edges (and the day before each), a sample of the rare kinds (declines,
#: SÄBO spells, population changes) and one of the common ones (listings, FLK assignments)
EDGE_DAYS = """
WITH edges AS (
    SELECT start_on AS d, 'common' AS kind FROM listing.listing UNION SELECT end_on, 'common' FROM listing.listing
    UNION SELECT start_on, 'common' FROM listing.flk_assignment UNION SELECT end_on, 'common' FROM listing.flk_assignment
    UNION SELECT start_on, 'rare' FROM listing.flk_decline UNION SELECT end_on, 'rare' FROM listing.flk_decline
    UNION SELECT start_on, 'rare' FROM listing.sabo_residence UNION SELECT end_on, 'rare' FROM listing.sabo_residence
    UNION SELECT status_date, 'rare' FROM listing.person
), days AS (
    SELECT DISTINCT e.d + shift AS d, kind FROM edges e, (VALUES (0), (-1)) s (shift)
    WHERE e.d BETWEEN $1::date AND $2::date
)
SELECT array_agg(DISTINCT d) FROM (
    (SELECT d FROM days WHERE kind = 'rare' ORDER BY md5(d::text) LIMIT $3)
    UNION ALL
    (SELECT d FROM days WHERE kind = 'common' ORDER BY md5(d::text) LIMIT $3)
) x
"""

#: rows of one side missing from the other, both ways, per day (EXCEPT ALL: duplicates count); each
#: side computed once
DIFFERENCES = """
WITH new AS MATERIALIZED (SELECT d, x.* FROM unnest($1::date[]) d, LATERAL listing.{what}(d) x),
     old AS MATERIALIZED (SELECT d, x.* FROM unnest($1::date[]) d, LATERAL listing.{what}_reference(d) x)
SELECT d, count(*) AS rows
FROM ((SELECT * FROM new EXCEPT ALL SELECT * FROM old) UNION ALL (SELECT * FROM old EXCEPT ALL SELECT * FROM new)) x
GROUP BY d ORDER BY d
"""

FUNCTIONS = ("person_goal_status_on", "goal_kpi_region_on", "goal_kpi_unit_on", "goal_kpi_list_on")


async def given_a_register(dsn: str, persons: int, seed: float) -> tuple[asyncpg.Connection, list]:
    conn = await asyncpg.connect(dsn)
    await conn.execute("SET jit = off")  # compiling the old functions' plans costs more than running them here
    today = await conn.fetchval("SELECT current_date")
    first_day = await fill_register(conn, persons, today=today, seed=seed)
    await create_reference_functions(conn)
    days = await conn.fetchval(EDGE_DAYS, first_day - timedelta(days=30), today + timedelta(days=30), 35)
    return conn, sorted(days)


@pytest.mark.parametrize("persons, seed", [(1500, 0.11), (800, -0.7)])
async def test_every_goal_kpi_equals_the_per_person_definition_on_every_compared_day(
        migrated_database: str, persons: int, seed: float) -> None:
    conn, days = await given_a_register(migrated_database, persons, seed)
    try:
        assert len(days) > 50
        for what in FUNCTIONS:
            differing = await conn.fetch(DIFFERENCES.format(what=what), days)
            assert [dict(r) for r in differing] == [], f"{what} differs from 0004's on some days"
        # the comparison is not empty: the register has what the KPIs count, on the compared days
        seen = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE named_flk) AS named, count(*) FILTER (WHERE declined) AS declined, "
            "count(*) FILTER (WHERE fictive_only) AS fictive, count(*) FILTER (WHERE main_care_unknown) AS unknown, "
            "count(*) FILTER (WHERE sabo AND NOT g3_resident) AS elsewhere, "
            "count(*) FILTER (WHERE NOT in_population) AS out, "
            "count(*) FILTER (WHERE listed_unit IS NULL) AS unlisted "
            "FROM unnest($1::date[]) d, listing.person_goal_status_on(d)", days)
        assert all(n > 0 for n in seen.values()), dict(seen)
    finally:
        await conn.close()


STORED_DIFFERENCES = """
SELECT count(*) FROM ((SELECT {columns} FROM listing.goal_kpi_{level}_daily WHERE snapshot_on = $1
                       EXCEPT ALL SELECT {columns} FROM listing.goal_kpi_{level}_{source}($1))
                      UNION ALL (SELECT {columns} FROM listing.goal_kpi_{level}_{source}($1)
                       EXCEPT ALL SELECT {columns} FROM listing.goal_kpi_{level}_daily WHERE snapshot_on = $1)) x
"""


async def stored_columns(conn: asyncpg.Connection, level: str) -> str:
    return ", ".join(
        f'"{c}"' for c in await conn.fetchval(
            "SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns "
            "WHERE table_schema = 'listing' AND table_name = $1 "
            "AND column_name NOT IN ('snapshot_on', 'computed_at')", f"goal_kpi_{level}_daily"))


async def test_a_stored_snapshot_equals_the_per_person_definition_of_its_day(migrated_database: str) -> None:
    conn, days = await given_a_register(migrated_database, 1500, 0.42)
    try:
        for day in days[:: max(1, len(days) // 8)]:
            assert await conn.fetchval("SELECT listing.record_goal_kpis($1)", day) > 0
            for level in ("region", "unit", "list"):
                differing = await conn.fetchval(STORED_DIFFERENCES.format(
                    columns=await stored_columns(conn, level), level=level, source="on_reference"), day)
                assert differing == 0, f"{level} on {day}"
    finally:
        await conn.close()


@pytest.mark.parametrize("persons, seed", [(1500, 0.42), (800, -0.3)])
async def test_the_one_pass_snapshot_stores_what_the_live_views_show_on_every_compared_day(
        migrated_database: str, persons: int, seed: float) -> None:
    """0010 computes the snapshot's region, unit and list rows from one per-person pass; the live views
    (0008's goal_kpi_*_on) compute each level on its own. Every compared day, both registers."""
    conn, days = await given_a_register(migrated_database, persons, seed)
    try:
        columns = {level: await stored_columns(conn, level) for level in ("region", "unit", "list")}
        for day in days:
            stored = await conn.fetchval("SELECT listing.record_goal_kpis($1)", day)
            expected = sum([await conn.fetchval(f"SELECT count(*) FROM listing.goal_kpi_{level}_on($1)", day)
                            for level in ("region", "unit", "list")])
            assert stored == expected > 0, day
            for level in ("region", "unit", "list"):
                differing = await conn.fetchval(STORED_DIFFERENCES.format(
                    columns=columns[level], level=level, source="on"), day)
                assert differing == 0, f"{level} on {day}"
        # storing a day again replaces its rows (the count of each day's rows is what one store gives)
        again = days[len(days) // 2]
        first = await conn.fetchval("SELECT listing.record_goal_kpis($1)", again)
        assert await conn.fetchval("SELECT listing.record_goal_kpis($1)", again) == first
        held = sum([await conn.fetchval(f"SELECT count(*) FROM listing.goal_kpi_{level}_daily WHERE snapshot_on = $1",
                                        again) for level in ("region", "unit", "list")])
        assert held == first
        # the stored snapshot is not trivially empty: named FLK and SÄBO residents were counted
        assert await conn.fetchval(
            "SELECT sum(with_named_flk) > 0 AND sum(sabo_residents) > 0 FROM listing.goal_kpi_region_daily")
    finally:
        await conn.close()


async def test_days_stored_on_several_connections_at_once_equal_the_days_stored_one_by_one(
        migrated_database: str) -> None:
    """The main job stores the replayed period's days at once (tools/mainjob/goals.py): each day writes
    only its own rows, so the stored rows are those of storing each day alone."""
    from tools.mainjob.goals import record_listing_kpi_days, record_listing_kpi_days_at_once

    conn, days = await given_a_register(migrated_database, 800, 0.23)
    try:
        days = days[:: max(1, len(days) // 10)]
        levels = ("region", "unit", "list")
        columns = {level: await stored_columns(conn, level) for level in levels}

        async def stored() -> dict[str, list]:
            return {level: await conn.fetch(
                f"SELECT snapshot_on, {columns[level]} FROM listing.goal_kpi_{level}_daily "
                f"ORDER BY snapshot_on, {columns[level]}") for level in levels}

        alone_count = await record_listing_kpi_days(conn, days)
        alone = await stored()
        at_once_count = await record_listing_kpi_days_at_once(migrated_database, days, connections=3)
        at_once = await stored()
    finally:
        await conn.close()
    assert len(days) > 3
    assert at_once_count == alone_count > 0
    assert {level: [tuple(r) for r in rows] for level, rows in at_once.items()} == \
        {level: [tuple(r) for r in rows] for level, rows in alone.items()}
    assert {row["snapshot_on"] for row in at_once["region"]} == set(days)
