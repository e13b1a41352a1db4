"""Goal KPI views G1 and G3 (migration 0002) read by the read-only role, on a register filled the way
production fills it: the listing import, then the service's own handlers for a decline (F7), a
death (P1), SÄBO residences and a person who is not listed."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from tools.infra.settings import InfraSettings
from flk.security.pseudonym import parse_person_id, patient_key
from flk.security.vault import IdentityVault
from flk.settings import DEV_PSEUDONYM_KEY, DEV_VAULT_KEY
from services.listing.service_layer.handlers import COMMAND_HANDLERS, FACT_HANDLERS, Deps, Message
from services.listing.service_layer.importer import ImportOptions, ListingImport
from tests.support.listing_register import (
    DOCTOR_A1,
    DOCTOR_A2,
    DOCTOR_B1,
    DOCTOR_ST,
    LOCUM_A,
    REGION,
    UNIT_A,
    UNIT_B,
    given_region_register,
    pnr,
    write_extract,
)

KEY = DEV_PSEUDONYM_KEY.encode()


def key_of(serial: int) -> str:
    return patient_key(parse_person_id(pnr(serial)), KEY)


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


async def handle(deps: Deps, message_type: str, data: dict) -> None:
    handler = {**COMMAND_HANDLERS, **FACT_HANDLERS}[message_type]
    await handler(Message(str(uuid.uuid4()), message_type, data, datetime.now(timezone.utc)), deps)


@pytest.fixture
async def region(migrated_database: str, tmp_path):
    """The register on ``today``; returns (today, readonly connection)."""
    conn = await asyncpg.connect(migrated_database)
    today: date = await conn.fetchval("SELECT current_date")
    as_of = today - timedelta(days=10)
    await given_region_register(conn, as_of - timedelta(days=365))
    extract = write_extract(tmp_path / "LISTINGS.csv", [
        (pnr(1), UNIT_A, DOCTOR_A1, "tillsvidare"),  # SÄBO, named FLK
        (pnr(2), UNIT_A, DOCTOR_ST, "st"),
        (pnr(3), UNIT_A, LOCUM_A, "hyr"),  # SÄBO, fictive list only (F3)
        (pnr(4), UNIT_A, DOCTOR_A1, "tillsvidare"),  # SÄBO, declines (F7)
        (pnr(8), UNIT_A, DOCTOR_A2, "tillsvidare"),
        (pnr(9), UNIT_A, DOCTOR_A2, "tillsvidare"),  # dies (P1)
        (pnr(10), UNIT_A, "", ""),  # no FLK at all
        (pnr(5), UNIT_B, DOCTOR_B1, "tillsvidare"),
    ])
    await ListingImport(conn, ImportOptions(extract, "vastmanland", as_of, dry_run=False), KEY,
                        IdentityVault(DEV_VAULT_KEY)).run()
    pool = await asyncpg.create_pool(migrated_database, min_size=1, max_size=2)
    deps = Deps(pool=pool, profile_name="vastmanland", timezone="Europe/Stockholm",
                clock=lambda: datetime.now(timezone.utc))
    await handle(deps, "person.registered.v1", {"patient_key": key_of(20), "status": "folkbokford",
                                                "region_code": REGION, "birth_date": "1930-05-05",
                                                "updated_at": now(), "id_kind": "personnummer"})
    for serial in (1, 3, 4, 20):
        await handle(deps, "residence.recorded.v1", {
            "residence_id": f"res-{serial}", "patient_key": key_of(serial), "municipality_code": "1980",
            "sabo_from": (today - timedelta(days=30)).isoformat(), "sabo_to": None, "recorded_at": now()})
    await handle(deps, "fast_lakarkontakt.decline.v1", {
        "command_id": str(uuid.uuid4()), "patient_key": key_of(4), "care_unit_id": UNIT_A,
        "effective_date": (today - timedelta(days=3)).isoformat(), "requested_at": now(), "channel": "ehr"})
    await handle(deps, "person.updated.v1", {"patient_key": key_of(9), "status": "deceased",
                                             "status_date": (today - timedelta(days=2)).isoformat(),
                                             "updated_at": now(), "region_code": REGION})
    await pool.close()
    await conn.close()
    reader = await asyncpg.connect(InfraSettings().dsn("readonly", database=migrated_database.rsplit("/", 1)[1]))
    yield today, reader, migrated_database
    await reader.close()


async def test_G1_and_G3_per_region_count_named_flk_only_and_show_declined(region):
    _today, reader, _dsn = region
    row = await reader.fetchrow("SELECT * FROM listing.goal_kpi_region WHERE region_code = $1", REGION)
    # population: 8 alive (the deceased person is out, P1); listed 7; named FLK 4 (a fictive list is not one, F3)
    assert (row["population"], row["listed"], row["with_named_flk"], row["listed_with_named_flk"]) == (8, 7, 4, 4)
    assert (row["listed_declined"], row["listed_on_fictive_list_only"], row["listed_without_flk"]) == (1, 1, 1)
    assert row["g1_share_of_population"] == Decimal("0.5000")
    assert row["g1_share_of_listed"] == Decimal("0.5714")
    assert row["g1_target"] == Decimal("0.55")
    # SÄBO: 4 residents, 1 with a named FLK (the locum's patient and the one who declined lack one)
    assert (row["sabo_residents"], row["sabo_with_named_flk"], row["sabo_declined"]) == (4, 1, 1)
    assert row["g3_share"] == Decimal("0.2500") and row["g3_target"] == Decimal("0.80")


async def test_G1_and_G3_per_unit_are_over_the_units_listed_persons(region):
    _today, reader, _dsn = region
    rows = {r["care_unit_id"]: r for r in await reader.fetch("SELECT * FROM listing.goal_kpi_unit")}
    a, b = rows[UNIT_A], rows[UNIT_B]
    assert (a["listed"], a["with_named_flk"], a["declined"], a["on_fictive_list_only"], a["without_flk"]) == (
        6, 3, 1, 1, 1)
    assert a["g1_share_of_listed"] == Decimal("0.5000") and a["region_code"] == REGION
    assert (a["sabo_residents"], a["sabo_with_named_flk"], a["g3_share"]) == (3, 1, Decimal("0.3333"))
    assert (b["listed"], b["with_named_flk"], b["g1_share_of_listed"], b["g3_share"]) == (1, 1, Decimal("1.0000"), None)


async def test_per_list_a_doctors_patients_and_the_fictive_list_that_is_not_an_flk(region):
    _today, reader, _dsn = region
    rows = {r["practitioner_id"] or r["kind"]: r for r in await reader.fetch(
        "SELECT * FROM listing.goal_kpi_list WHERE care_unit_id = $1", UNIT_A)}
    a2 = rows[DOCTOR_A2]  # the deceased patient's FLK ended (P1)
    assert (a2["patients"], a2["unit_listed"], a2["share_of_unit_listed"], a2["counts_as_named_flk"]) == (
        1, 6, Decimal("0.1667"), True)
    a1 = rows[DOCTOR_A1]  # the patient who declined left this list (F7)
    assert (a1["patients"], a1["sabo_patients"], a1["share_of_unit_sabo"]) == (1, 1, Decimal("0.3333"))
    fictive = rows["fictive"]
    assert (fictive["patients"], fictive["counts_as_named_flk"], fictive["display_name"]) == (
        1, False, "Vårdcentralen Norberg Dr X")


async def test_a_past_day_is_computed_from_history(region):
    today, reader, _dsn = region
    before_death = today - timedelta(days=5)  # listed since as_of + 1 (L6), died today - 2
    unit = await reader.fetchrow("SELECT * FROM listing.goal_kpi_unit_on($1) WHERE care_unit_id = $2",
                                 before_death, UNIT_A)
    assert (unit["listed"], unit["with_named_flk"], unit["declined"]) == (7, 5, 0)


async def test_daily_snapshots_give_grafana_a_time_series(region):
    today, reader, dsn = region
    writer = await asyncpg.connect(dsn)  # the application role stores the days (flk listing kpi-snapshot)
    try:
        for day in (today - timedelta(days=12), today - timedelta(days=5)):
            assert await writer.fetchval("SELECT listing.record_goal_kpis($1::date)", day) > 0
        await writer.fetchval("SELECT listing.record_goal_kpis($1::date)", today - timedelta(days=5))  # idempotent
    finally:
        await writer.close()
    series = await reader.fetch("SELECT snapshot_on, g1_share_of_population, listed FROM "
                                "listing.goal_kpi_region_history WHERE region_code = $1 ORDER BY snapshot_on", REGION)
    assert [(r["snapshot_on"], r["listed"]) for r in series] == [
        (today - timedelta(days=12), 0), (today - timedelta(days=5), 8), (today, 7)]  # today: live
    assert series[0]["g1_share_of_population"] == Decimal("0.0000")
    assert series[-1]["g1_share_of_population"] == Decimal("0.5000")


async def test_the_read_only_role_reads_aggregates_never_persons(region):
    today, reader, _dsn = region
    for forbidden in ("SELECT * FROM listing.person_goal_status_on(current_date)",
                      "SELECT * FROM listing.person",
                      "SELECT listing.record_goal_kpis(current_date)"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await reader.fetch(forbidden)
    columns = {r["column_name"] for r in await reader.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'listing' "
        "AND table_name LIKE 'goal_kpi%'")}
    assert "patient_key" not in columns


async def test_flk_listing_kpi_snapshot_backfills_days_from_history(region):
    import asyncio

    from click.testing import CliRunner

    from services.listing.entrypoints.kpi_cli import kpi_snapshot

    today, reader, dsn = region
    first = today - timedelta(days=2)
    result = await asyncio.to_thread(CliRunner().invoke, kpi_snapshot,
                                     ["--from", first.isoformat(), "--to", today.isoformat()],
                                     env={"FLK_DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    assert result.output.count("KPI rows stored") == 3
    days = [r["snapshot_on"] for r in await reader.fetch(
        "SELECT snapshot_on FROM listing.goal_kpi_unit_daily WHERE care_unit_id = $1 ORDER BY 1", UNIT_A)]
    assert days == [first, first + timedelta(days=1), today]


async def test_the_running_service_stores_each_finished_day_once_and_catches_up_after_downtime(region):
    from services.listing.adapters.kpi_snapshots import store_finished_days

    today, reader, dsn = region
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        assert await store_finished_days(pool, today, 31) == [today - timedelta(days=1)]
        assert await store_finished_days(pool, today, 31) == []  # stored once; today stays live
        # the service was down for three days
        assert await store_finished_days(pool, today + timedelta(days=3), 31) == [
            today, today + timedelta(days=1), today + timedelta(days=2)]
        # another replica holds this round: it stores, this one skips
        async with pool.acquire() as other, other.transaction():
            await other.fetchval("SELECT pg_advisory_xact_lock($1)", 0x6B70_6931)
            assert await store_finished_days(pool, today + timedelta(days=5), 31) == []
    finally:
        await pool.close()
    stored = [r["snapshot_on"] for r in await reader.fetch(
        "SELECT snapshot_on FROM listing.goal_kpi_region_daily WHERE region_code = $1 ORDER BY 1", REGION)]
    assert stored == [today + timedelta(days=n) for n in (-1, 0, 1, 2)]
    stored_yesterday = await reader.fetchrow(
        "SELECT listed, with_named_flk FROM listing.goal_kpi_region_daily WHERE snapshot_on = $1", today - timedelta(days=1))
    assert tuple(stored_yesterday) == (7, 4)  # the day's own figures: after the death (P1), after the decline (F7)
