"""G3 counts the SÄBO residents who get their main health care there (migration 0004).

Seed 001: "de som bor på SÄBO för äldre och som där får sin huvudsakliga hälso- och sjukvård ska andelen
som har en fast läkarkontakt utgöra minst 80 procent". The residence fact carries the qualifier as the
optional `main_care_in_residence`; the register keeps it per residence period. A resident recorded as
getting their main care elsewhere is out of G3; one whose fact does not say (older producers) is counted,
as before the field existed, and shown as `g3_main_care_unknown`. Filled the way production fills it: the
listing import, then the service's handlers for the residence facts; read by the read-only role."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from tools.infra.settings import InfraSettings
from flk.security.vault import IdentityVault
from flk.settings import DEV_VAULT_KEY
from services.listing.service_layer.handlers import Deps
from services.listing.service_layer.importer import ImportOptions, ListingImport
from tests.integration.listing.test_goal_kpi_views import KEY, handle, key_of, now
from tests.support.listing_register import (
    DOCTOR_A1,
    DOCTOR_B1,
    LOCUM_A,
    REGION,
    UNIT_A,
    UNIT_B,
    given_region_register,
    pnr,
    write_extract,
)


def residence(serial: int, since: date, main_care: bool | None, *, until: date | None = None,
              recorded_at: str | None = None) -> dict:
    data = {"residence_id": f"res-{serial}", "patient_key": key_of(serial), "municipality_code": "1980",
            "sabo_from": since.isoformat(), "sabo_to": until.isoformat() if until else None,
            "recorded_at": recorded_at or now()}
    if main_care is not None:
        data["main_care_in_residence"] = main_care
    return data


@pytest.fixture
async def sabo_region(migrated_database: str, tmp_path):
    """Five SÄBO residents: (1) main care there, named FLK; (2) main care elsewhere, named FLK;
    (3) main care elsewhere, only on the locum's fictive list; (4) not recorded (an older producer), no
    FLK; (5) main care there, named FLK at unit B. Returns (today, read-only connection, dsn, deps)."""
    conn = await asyncpg.connect(migrated_database)
    today: date = await conn.fetchval("SELECT current_date")
    as_of = today - timedelta(days=10)
    await given_region_register(conn, as_of - timedelta(days=365))
    extract = write_extract(tmp_path / "LISTINGS.csv", [
        (pnr(1), UNIT_A, DOCTOR_A1, "tillsvidare"),
        (pnr(2), UNIT_A, DOCTOR_A1, "tillsvidare"),
        (pnr(3), UNIT_A, LOCUM_A, "hyr"),
        (pnr(4), UNIT_A, "", ""),
        (pnr(5), UNIT_B, DOCTOR_B1, "tillsvidare"),
        (pnr(8), UNIT_A, DOCTOR_A1, "tillsvidare"),  # not in SÄBO
    ])
    await ListingImport(conn, ImportOptions(extract, "vastmanland", as_of, dry_run=False), KEY,
                        IdentityVault(DEV_VAULT_KEY)).run()
    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=2)
    deps = Deps(pool=pool, profile_name="vastmanland", timezone="Europe/Stockholm",
                clock=lambda: datetime.now(timezone.utc))
    since = today - timedelta(days=30)
    for serial, main_care in ((1, True), (2, False), (3, False), (4, None), (5, True)):
        await handle(deps, "residence.recorded.v1", residence(serial, since, main_care))
    await conn.close()
    reader = await asyncpg.connect(InfraSettings().dsn("readonly", database=migrated_database.rsplit("/", 1)[1]))
    yield today, reader, migrated_database, deps
    await reader.close()
    await pool.close()


async def test_G3_counts_only_sabo_residents_who_get_their_main_care_there(sabo_region):
    _today, reader, _dsn, _deps = sabo_region
    row = await reader.fetchrow("SELECT * FROM listing.goal_kpi_region WHERE region_code = $1", REGION)

    # every SÄBO resident, as before: 5, of whom 3 have a named FLK
    assert (row["sabo_residents"], row["sabo_with_named_flk"]) == (5, 3)
    # G3: residents 1 and 5 (main care there) and 4 (not recorded); 2 and 3 get their main care elsewhere
    assert (row["g3_residents"], row["g3_with_named_flk"], row["sabo_main_care_elsewhere"]) == (3, 2, 2)
    assert row["g3_share"] == Decimal("0.6667") and row["g3_target"] == Decimal("0.80")


async def test_G3_shows_how_many_of_its_residents_have_the_qualifier_not_recorded(sabo_region):
    _today, reader, _dsn, _deps = sabo_region
    row = await reader.fetchrow("SELECT * FROM listing.goal_kpi_region WHERE region_code = $1", REGION)

    assert row["g3_main_care_unknown"] == 1  # resident 4: counted in G3, and visibly so


async def test_G3_per_unit_and_per_list_count_the_same_residents(sabo_region):
    _today, reader, _dsn, _deps = sabo_region
    units = {r["care_unit_id"]: r for r in await reader.fetch("SELECT * FROM listing.goal_kpi_unit")}
    a, b = units[UNIT_A], units[UNIT_B]
    assert (a["sabo_residents"], a["sabo_main_care_elsewhere"], a["g3_residents"], a["g3_with_named_flk"],
            a["g3_main_care_unknown"], a["g3_share"]) == (4, 2, 2, 1, 1, Decimal("0.5000"))
    assert (b["g3_residents"], b["g3_with_named_flk"], b["g3_share"]) == (1, 1, Decimal("1.0000"))

    lists = {r["practitioner_id"]: r for r in await reader.fetch(
        "SELECT * FROM listing.goal_kpi_list WHERE care_unit_id = $1 AND kind = 'doctor'", UNIT_A)}
    a1 = lists[DOCTOR_A1]  # residents 1 (G3) and 2 (main care elsewhere), and person 8 (no SÄBO)
    assert (a1["patients"], a1["sabo_patients"], a1["g3_patients"]) == (3, 2, 1)
    assert (a1["unit_sabo_residents"], a1["unit_g3_residents"], a1["share_of_unit_g3"]) == (4, 2, Decimal("0.5000"))


async def test_the_legacy_G3_views_count_the_same_residents(sabo_region):
    _today, reader, _dsn, _deps = sabo_region
    row = await reader.fetchrow("SELECT * FROM listing.kpi_g3_region WHERE region_code = $1", REGION)
    assert (row["sabo_residents"], row["with_named_flk"], row["share"]) == (3, 2, Decimal("0.6667"))


async def test_a_later_residence_fact_without_the_qualifier_keeps_the_one_recorded(sabo_region):
    today, reader, dsn, deps = sabo_region
    since = today - timedelta(days=30)
    # an older producer closes resident 2's period in the future and corrects nothing else
    await handle(deps, "residence.recorded.v1", residence(2, since, None, until=today + timedelta(days=30)))
    # the municipality records that resident 4 gets their main care there after all
    await handle(deps, "residence.recorded.v1", residence(4, since, True))

    row = await reader.fetchrow("SELECT * FROM listing.goal_kpi_region WHERE region_code = $1", REGION)
    assert (row["g3_residents"], row["sabo_main_care_elsewhere"], row["g3_main_care_unknown"]) == (3, 2, 0)
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT main_care_in_residence FROM listing.sabo_residence "
                                     "WHERE residence_id = 'res-2'")
    finally:
        await conn.close()
    assert stored is False


async def test_stored_days_and_the_time_series_carry_the_G3_population(sabo_region):
    today, reader, dsn, _deps = sabo_region
    writer = await asyncpg.connect(dsn)
    try:
        await writer.fetchval("SELECT listing.record_goal_kpis($1::date)", today - timedelta(days=1))
    finally:
        await writer.close()
    series = await reader.fetch(
        "SELECT snapshot_on, sabo_residents, g3_residents, g3_main_care_unknown, g3_share "
        "FROM listing.goal_kpi_region_history WHERE region_code = $1 ORDER BY snapshot_on", REGION)
    assert [tuple(r) for r in series] == [
        (today - timedelta(days=1), 5, 3, 1, Decimal("0.6667")),
        (today, 5, 3, 1, Decimal("0.6667")),
    ]


async def test_days_stored_before_the_qualifier_existed_keep_their_G3_share_with_every_resident_unknown(
        fresh_database: str):
    """Upgrading a register that has stored days: migration 0004 rebuilds the daily tables, and a day stored
    under 0002 (no qualifier) gets its SÄBO residents as G3's population, all with the qualifier unknown."""
    from tools.migrations import discover

    before, upgrade = [], None
    for m in discover():
        if m.component == "listing" and m.version == 4:
            upgrade = m
        elif m.component == "platform" or (m.component == "listing" and m.version < 4):
            before.append(m)  # the register as it was before 0004 (later migrations build on 0004)
    assert upgrade is not None
    conn = await asyncpg.connect(fresh_database)
    try:
        for m in before:
            await conn.execute(m.sql)
        yesterday = await conn.fetchval("SELECT current_date - 1")
        a, b = key_of(101), key_of(102)
        await conn.execute(
            "INSERT INTO listing.person (patient_key, population_status, home_region) VALUES "
            "($2, 'folkbokford', $1), ($3, 'folkbokford', $1)", REGION, a, b)
        await conn.execute(
            "INSERT INTO listing.sabo_residence (residence_id, patient_key, start_on, recorded_at) VALUES "
            "('r-a', $2, $1::date - 30, now()), ('r-b', $3, $1::date - 30, now())", yesterday, a, b)
        await conn.fetchval("SELECT listing.record_goal_kpis($1::date)", yesterday)

        await conn.execute(upgrade.sql)

        row = await conn.fetchrow("SELECT * FROM listing.goal_kpi_region_daily WHERE snapshot_on = $1", yesterday)
        assert (row["sabo_residents"], row["sabo_main_care_elsewhere"], row["g3_residents"],
                row["g3_main_care_unknown"], row["g3_with_named_flk"], row["g3_share"]) == (
            2, 0, 2, 2, 0, Decimal("0.0000"))
        # and the upgraded register stores new days in the rebuilt tables
        assert await conn.fetchval("SELECT listing.record_goal_kpis($1::date)", yesterday) > 0
    finally:
        await conn.close()
