"""How the register is read and guarded per person (listing migrations 0011, 0012, 0013): a person's listings and
FLK assignments are read through the btree indexes (the GiST indexes of the no-overlap constraints
answered the same lookups ten times slower), and the no-overlap constraints still refuse what they did —
led by a hash of the person's key (cheaper inserts), but comparing the key itself."""
from __future__ import annotations

import uuid
from datetime import date

import asyncpg
import pytest

from services.listing.adapters.rows import LOAD_PATIENTS
from tests.support.synthetic_register import fill_register

pytestmark = pytest.mark.integration

TODAY = date(2026, 12, 4)


async def test_the_decision_slice_reads_a_persons_listings_and_assignments_through_the_btree_indexes(
        migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        await fill_register(conn, 20_000, today=TODAY)
        await conn.execute("ANALYZE")
        keys = [r["patient_key"] for r in await conn.fetch(
            "SELECT patient_key FROM listing.person ORDER BY md5(patient_key) LIMIT 21")]
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + LOAD_PATIENTS, keys, TODAY))
    finally:
        await conn.close()
    scans = [line.strip() for line in plan.splitlines() if " on listing " in line or " on flk_assignment " in line]
    assert scans, plan
    assert not [s for s in scans if "no_overlap" in s], plan
    assert any("listing_person_idx" in s for s in scans), plan
    assert any("flk_assignment_open_person_idx" in s or "flk_assignment_person_idx" in s for s in scans), plan


async def test_overlapping_listings_of_one_person_and_assignments_to_one_list_are_still_refused(
        migrated_database):
    conn = await asyncpg.connect(migrated_database)
    try:
        await fill_register(conn, 200, today=TODAY)
        listed = await conn.fetchrow("SELECT patient_key, care_unit_id, start_on FROM listing.listing "
                                     "WHERE end_on IS NULL LIMIT 1")
        other_unit = await conn.fetchval("SELECT hsa_id FROM listing.care_unit WHERE hsa_id <> $1 LIMIT 1",
                                         listed["care_unit_id"])
        with pytest.raises(asyncpg.ExclusionViolationError):
            # ended, so the one-open-listing index does not object: only the no-overlap constraint does
            await conn.execute(
                "INSERT INTO listing.listing (listing_id, patient_key, care_unit_id, registered_on, start_on, end_on,"
                " origin, channel, initiated_by) VALUES ($1, $2, $3, $4::date, $4::date, $4::date + 10, 'active_choice', 'ehr', 'person')",
                uuid.uuid4(), listed["patient_key"], other_unit, listed["start_on"])
        assigned = await conn.fetchrow("SELECT * FROM listing.flk_assignment WHERE end_on IS NULL LIMIT 1")
        with pytest.raises(asyncpg.ExclusionViolationError):
            await conn.execute(
                "INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id, list_kind,"
                " practitioner_id, coordinating, start_on, end_on) VALUES ($1, $2, $3, $4, $5, $6, false, $7::date, $7::date + 5)",
                uuid.uuid4(), assigned["patient_key"], assigned["list_id"], assigned["care_unit_id"],
                assigned["list_kind"], assigned["practitioner_id"], assigned["start_on"])
        # another list of the same person, the same period: allowed (the constraint is per person and list)
        other_list = await conn.fetchrow("SELECT list_id, care_unit_id, kind FROM listing.doctor_list WHERE list_id <> $1 "
                                         "AND care_unit_id = $2 LIMIT 1", assigned["list_id"], assigned["care_unit_id"])
        await conn.execute(
            "INSERT INTO listing.flk_assignment (assignment_id, patient_key, list_id, care_unit_id, list_kind,"
            " practitioner_id, coordinating, start_on, end_on) VALUES ($1, $2, $3, $4, $5, NULL, false, $6::date, $6::date + 5)",
            uuid.uuid4(), assigned["patient_key"], other_list["list_id"], other_list["care_unit_id"],
            other_list["kind"], assigned["start_on"])
    finally:
        await conn.close()


async def test_the_no_overlap_constraints_compare_the_persons_key_itself_not_only_its_hash(migrated_database):
    """The hash that leads each constraint's index only steers its descent: two persons whose hashes collided
    would be refused for each other's periods if the key itself were not compared too."""
    conn = await asyncpg.connect(migrated_database)
    try:
        definitions = {r["conname"]: r["def"] for r in await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conname IN ('listing_no_overlap', 'flk_assignment_no_overlap')")}
    finally:
        await conn.close()
    assert set(definitions) == {"listing_no_overlap", "flk_assignment_no_overlap"}
    for definition in definitions.values():
        assert "hashtextextended(patient_key, (0)::bigint) WITH =" in definition, definition
        assert "((patient_key || ''::text)) WITH =" in definition, definition
        assert "period WITH &&" in definition, definition
    assert "((list_id || ''::text)) WITH =" in definitions["flk_assignment_no_overlap"]
