"""Fasta kontakter KPIs (migration 0007; issue 13, item 6): the share with a named FLK, with an open fast
vårdkontakt, and with both — for the population, for RUB 4–5 (the latest assessment) and for SÄBO residents
(G3's population) — per region and per unit, read by the read-only role.

The register is the one of test_goal_kpi_views (the listing import, a decline, a death, SÄBO residences, a
person who is not listed); fast vårdkontakter are appointed through the service's own command handler and
risk assessments arrive through its fact handler. Seed 002's survey (97 % of SÄBO residents with a fast
vårdkontakt, 93 % with an FLK) is the dashboard's reference, not a figure these tests expect."""
from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from services.listing.service_layer.handlers import Deps
from tests.support.listing_register import REGION, UNIT_A, UNIT_B

import test_goal_kpi_views
from test_goal_kpi_views import handle, key_of, now

#: the register of test_goal_kpi_views, shared as a fixture
region = test_goal_kpi_views.region

NURSE = "SE2321000222-S001"


def at(day, hour: int = 12) -> str:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def contacts(region):
    today, reader, dsn = region
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    deps = Deps(pool=pool, profile_name="vastmanland", timezone="Europe/Stockholm",
                clock=lambda: datetime.now(timezone.utc))
    # fast vårdkontakter: 1 (SÄBO, named FLK), 2 (named FLK), 3 (SÄBO, fictive list only), 10 (no FLK)
    for serial, unit in ((1, UNIT_A), (2, UNIT_A), (3, UNIT_A), (10, UNIT_A)):
        await handle(deps, "fast_vardkontakt.appoint.v1", {
            "command_id": str(uuid.uuid4()), "patient_key": key_of(serial), "care_unit_id": unit,
            "practitioner_id": NURSE, "profession": "sjukskoterska", "requested_at": now(), "channel": "ehr",
            "effective_date": (today - timedelta(days=20)).isoformat()})
    # RUB, versioned by computed_at: 2 was RUB 4 and is RUB 2 now (the latest wins)
    for serial, rub, days_ago in ((1, 5, 30), (2, 4, 20), (2, 2, 5), (10, 5, 30), (3, 3, 30), (5, 4, 30)):
        computed = today - timedelta(days=days_ago)
        await handle(deps, "risk.assessed.v1", {
            "assessment_id": f"acg-{serial}-{days_ago}", "patient_key": key_of(serial), "rub": rub,
            "acg_version": "12.1", "lookback_months": 18, "computed_at": at(computed)})
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM listing.fast_vardkontakt") == 4
        assert await conn.fetchval("SELECT count(*) FROM listing.risk_assessment") == 6
        # 8's fast vårdkontakt ended three days ago (the register's end, as the service writes it on an end)
        await conn.execute(
            "INSERT INTO listing.fast_vardkontakt (appointment_id, patient_key, care_unit_id, practitioner_id, "
            "profession, appointed_by_hsa_id, start_on, end_on, end_reason) "
            "VALUES ($1, $2, $3, $4, 'sjukskoterska', '', $5, $6, 'ended_by_unit')",
            uuid.uuid4(), key_of(8), UNIT_A, NURSE, today - timedelta(days=20), today - timedelta(days=3))
    await pool.close()
    yield today, reader


async def test_shares_with_flk_fast_vardkontakt_and_both_per_region_for_population_rub_4_5_and_sabo(contacts):
    _today, reader = contacts
    row = await reader.fetchrow("SELECT * FROM listing.fasta_kontakter_kpi_region WHERE region_code = $1", REGION)
    # population 8 (the deceased person is out, P1); FLK: 1, 2, 8, 5; fast vårdkontakt: 1, 2, 3, 10 (8's ended)
    assert (row["population"], row["with_named_flk"], row["with_fast_vardkontakt"], row["with_both"]) == (8, 4, 4, 2)
    assert (row["share_named_flk"], row["share_fast_vardkontakt"], row["share_both"]) == (
        Decimal("0.5000"), Decimal("0.5000"), Decimal("0.2500"))
    # RUB 4–5 by the latest assessment: 1 (5), 10 (5), 5 (4); not 2 (RUB 4, then 2); never assessed: 4, 8, 20
    assert (row["rub_4_5"], row["rub_4_5_with_named_flk"], row["rub_4_5_with_fast_vardkontakt"],
            row["rub_4_5_with_both"], row["without_rub"]) == (3, 2, 2, 1, 3)
    assert (row["rub_4_5_share_named_flk"], row["rub_4_5_share_fast_vardkontakt"], row["rub_4_5_share_both"]) == (
        Decimal("0.6667"), Decimal("0.6667"), Decimal("0.3333"))
    # SÄBO (G3's population): 1, 3, 4, 20; FLK: 1; fast vårdkontakt: 1, 3
    assert (row["g3_residents"], row["g3_with_named_flk"], row["g3_with_fast_vardkontakt"], row["g3_with_both"]) == (
        4, 1, 2, 1)
    assert (row["g3_share_named_flk"], row["g3_share_fast_vardkontakt"], row["g3_share_both"]) == (
        Decimal("0.2500"), Decimal("0.5000"), Decimal("0.2500"))


async def test_per_unit_the_shares_are_over_the_units_listed_persons(contacts):
    _today, reader = contacts
    rows = {r["care_unit_id"]: r for r in await reader.fetch("SELECT * FROM listing.fasta_kontakter_kpi_unit")}
    a, b = rows[UNIT_A], rows[UNIT_B]
    assert (a["listed"], a["with_named_flk"], a["with_fast_vardkontakt"], a["with_both"]) == (6, 3, 4, 2)
    assert (a["rub_4_5"], a["rub_4_5_share_named_flk"], a["rub_4_5_share_fast_vardkontakt"],
            a["rub_4_5_share_both"]) == (2, Decimal("0.5000"), Decimal("1.0000"), Decimal("0.5000"))
    assert (a["g3_residents"], a["g3_share_named_flk"], a["g3_share_fast_vardkontakt"]) == (
        3, Decimal("0.3333"), Decimal("0.6667"))
    assert (b["listed"], b["with_named_flk"], b["with_fast_vardkontakt"], b["rub_4_5"], b["g3_share_both"]) == (
        1, 1, 0, 1, None)


async def test_a_past_day_counts_the_rub_and_the_fast_vardkontakt_valid_that_day(contacts):
    today, reader = contacts
    row = await reader.fetchrow("SELECT * FROM listing.fasta_kontakter_kpi_region_on($1) WHERE region_code = $2",
                                today - timedelta(days=10), REGION)
    # ten days ago 2 was still RUB 4, and 8's fast vårdkontakt had not ended
    assert (row["rub_4_5"], row["with_fast_vardkontakt"]) == (4, 5)
    before_any = await reader.fetchrow("SELECT * FROM listing.fasta_kontakter_kpi_region_on($1) WHERE region_code = $2",
                                       today - timedelta(days=25), REGION)
    # 25 days ago: no fast vårdkontakt yet; assessed then: 1, 10, 3, 5 (those computed 30 days ago)
    assert (before_any["with_fast_vardkontakt"], before_any["without_rub"]) == (0, before_any["population"] - 4)


async def test_the_read_only_role_reads_the_aggregates_never_the_persons(contacts):
    _today, reader = contacts
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await reader.fetch("SELECT * FROM listing.fasta_kontakter_status_on(current_date)")
    columns = {r["column_name"] for r in await reader.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'listing' "
        "AND table_name LIKE 'fasta_kontakter%'")}
    assert columns and "patient_key" not in columns
