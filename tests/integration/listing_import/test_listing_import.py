"""`flk listing import` against the real PostgreSQL: a region's register (units, contracts, doctors'
roles and lists written by the service's reference-data adapters) and an extract with every kind
of problem."""
from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from flk.events.envelope import make_record
from flk.security.pseudonym import parse_person_id, patient_key
from flk.security.vault import IdentityVault
from flk.settings import DEV_PSEUDONYM_KEY, DEV_VAULT_KEY
from services.listing.adapters import reference
from services.listing.entrypoints.import_cli import import_extract
from services.listing.entrypoints.import_report import Progress
from services.listing.service_layer.importer import ImportOptions, ListingImport
from tests.support.listing_register import (
    DOCTOR_A1,
    DOCTOR_A2,
    DOCTOR_B1,
    DOCTOR_ST,
    LOCUM_A,
    UNIT_A,
    UNIT_A_NAME,
    UNIT_B,
    UNIT_UNKNOWN,
    given_region_register,
    pnr,
    write_extract,
)

AS_OF = date.today() - timedelta(days=10)
KEY = DEV_PSEUDONYM_KEY.encode()
VAULT = IdentityVault(DEV_VAULT_KEY)
TABLES = ("listing.person", "listing.listing", "listing.flk_assignment", "listing.outbox", "listing.doctor_list",
          "platform.person_identity", "listing.listing_change")


def key_of(number: str) -> str:
    return patient_key(parse_person_id(number), KEY)


def invalid_pnr() -> str:
    good = pnr(99)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


@pytest.fixture
async def db(migrated_database: str):
    conn = await asyncpg.connect(migrated_database)
    await given_region_register(conn, AS_OF - timedelta(days=365))
    yield conn
    await conn.close()


def extract_rows() -> list[tuple[str, ...]]:
    """Line numbers (header = line 1) are given in the comments."""
    return [
        (pnr(1), UNIT_A, DOCTOR_A1, "tillsvidare"),  # 2: listing + named FLK
        (pnr(2), UNIT_A, DOCTOR_ST, "st_allmanmedicin"),  # 3: ST-läkare is eligible (Västmanland)
        (pnr(3), UNIT_A, LOCUM_A, "stafett"),  # 4: F2 locum -> fictive list
        (pnr(4), UNIT_A, "", ""),  # 5: listing only
        (pnr(5), UNIT_B, DOCTOR_B1, "tillsvidare"),  # 6
        (pnr(6), UNIT_A, DOCTOR_A1, ""),  # 7: L1 conflict with line 8
        (pnr(6), UNIT_B, DOCTOR_B1, ""),  # 8
        (pnr(7), UNIT_UNKNOWN, "", ""),  # 9: L3 unknown unit
        (invalid_pnr(), UNIT_A, DOCTOR_A1, ""),  # 10: invalid personnummer
        (pnr(8), UNIT_A, DOCTOR_A2, "tillsvidare"),  # 11: A2 has capacity 1 ...
        (pnr(9), UNIT_A, DOCTOR_A2, "tillsvidare"),  # 12: ... so this makes the list over capacity (F6)
        (pnr(10), UNIT_A, "SE2321000222-NOBODY", "tillsvidare"),  # 13: F4 unknown doctor -> listing only
        (pnr(1), UNIT_A, DOCTOR_A1, "tillsvidare"),  # 14: duplicate of line 2
    ]


async def counts(conn) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


async def run_import(conn, path: Path, dry_run: bool = False, profile: str = "vastmanland"):
    options = ImportOptions(path=path, profile=profile, as_of=AS_OF, dry_run=dry_run, chunk_rows=4)
    return await ListingImport(conn, options, KEY, VAULT).run()


def finding(report, code: str):
    return next((f for f in report.findings.values() if f.code == code), None)


async def test_dry_run_reports_every_violation_and_writes_nothing(db, tmp_path):
    path = write_extract(tmp_path / "LISTINGS.csv", extract_rows())
    before = await counts(db)

    report = await run_import(db, path, dry_run=True)

    assert await counts(db) == before
    assert (report.rows, report.header, report.dry_run) == (13, True, True)
    assert (report.listings_started, report.named_assigned, report.fictive_assigned) == (8, 5, 1)
    assert finding(report, "locum_as_flk").lines == [4]
    several = finding(report, "several_listings")
    assert (several.lines, several.persons, several.rule_id) == ([7, 8], 1, "L1")
    assert finding(report, "unknown_unit").lines == [9]
    assert finding(report, "invalid_person_id").lines == [10]
    assert finding(report, "unknown_doctor").lines == [13]
    assert finding(report, "duplicate_row").lines == [14]
    [over] = report.over_capacity
    assert (over.practitioner_id, over.list_size, over.capacity, over.basis) == (DOCTOR_A2, 2, 1, "individual")


async def test_import_writes_the_valid_rows_in_one_transaction_with_outbox_and_vault(db, tmp_path):
    path = write_extract(tmp_path / "LISTINGS.csv", extract_rows())

    report = await run_import(db, path)

    assert (report.listings_started, report.named_assigned, report.fictive_assigned, report.failed_rows) == (8, 5, 1, 0)
    listings = await db.fetch("SELECT patient_key, care_unit_id, origin, channel, initiated_by, registered_on, "
                              "start_on FROM listing.listing")
    assert len(listings) == 8
    assert {(r["origin"], r["channel"], r["initiated_by"]) for r in listings} == {("import", "import", "region")}
    assert {r["registered_on"] for r in listings} == {AS_OF} and {r["start_on"] for r in listings} == {
        AS_OF + timedelta(days=1)}  # L6: responsibility from the day after
    assert key_of(pnr(6)) not in {r["patient_key"] for r in listings}  # L1: neither unit

    fictive = await db.fetchrow(
        "SELECT a.list_kind, d.display_name FROM listing.flk_assignment a JOIN listing.doctor_list d USING (list_id) "
        "WHERE a.patient_key = $1", key_of(pnr(3)))
    assert (fictive["list_kind"], fictive["display_name"]) == ("fictive", f"{UNIT_A_NAME} Dr X")
    named = await db.fetchval("SELECT practitioner_id FROM listing.flk_assignment WHERE patient_key = $1",
                              key_of(pnr(2)))
    assert named == DOCTOR_ST

    outbox = await db.fetch("SELECT event_type, data FROM listing.outbox ORDER BY id")
    types = [r["event_type"] for r in outbox]
    assert types.count("listing.started.v1") == 8
    assert types.count("fast_lakarkontakt.assigned.v1") == 6
    assert types.count("capacity.warning.v1") == 1  # F6: the second patient on A2's list
    for r in outbox:  # what the relay will publish is valid against the contract
        make_record(r["event_type"], json.loads(r["data"]), source="urn:flk:listing")

    sealed = await db.fetchrow("SELECT person_id_ciphertext, id_kind FROM platform.person_identity "
                               "WHERE patient_key = $1", key_of(pnr(1)))
    assert VAULT.open(key_of(pnr(1)), sealed["id_kind"], sealed["person_id_ciphertext"]).value == pnr(1).replace("-", "")
    assert await db.fetchval("SELECT birth_date FROM listing.person WHERE patient_key = $1", key_of(pnr(1))) == date(
        1950, 1, 1)


class CrashAtTheEnd(Progress):
    """Fails when the import pass ends — after every row was written, before the commit."""

    calls = 0

    def done(self) -> None:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("crash before commit")


async def test_the_import_is_one_transaction_a_crash_before_commit_leaves_nothing(db, tmp_path):
    path = write_extract(tmp_path / "LISTINGS.csv", extract_rows())
    before = await counts(db)
    options = ImportOptions(path=path, profile="vastmanland", as_of=AS_OF, dry_run=False, chunk_rows=4)
    importer = ListingImport(db, options, KEY, VAULT, progress=CrashAtTheEnd(enabled=False))

    with pytest.raises(RuntimeError, match="crash before commit"):
        await importer.run()

    assert importer.report.listings_started == 8  # the rows were written ...
    assert await counts(db) == before  # ... and rolled back together


async def test_reimporting_the_same_file_is_a_no_op(db, tmp_path):
    path = write_extract(tmp_path / "LISTINGS.csv", extract_rows())
    await run_import(db, path)
    after_first = await counts(db)

    again = await run_import(db, path)

    assert await counts(db) == after_first
    assert (again.listings_started, again.named_assigned, again.fictive_assigned, again.outbox_events) == (0, 0, 0, 0)
    assert again.already_registered == 9  # every importable row, including the F2 and F4 ones


async def test_a_row_the_database_refuses_does_not_abort_the_rest(db, tmp_path):
    # the database refuses every FLK at unit B (a stand-in for any failure of one row)
    await db.execute("""
        CREATE FUNCTION pg_temp.refuse_b() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.care_unit_id = 'SE2321000222-VCB2' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
        CREATE TRIGGER refuse_b BEFORE INSERT ON listing.flk_assignment FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_b();
    """)
    path = write_extract(tmp_path / "LISTINGS.csv", extract_rows())

    report = await run_import(db, path)

    assert finding(report, "database_error").lines == [6]
    assert report.failed_rows == 1 and report.listings_started == 7
    # the failed row left nothing behind: no person, no vault row, no listing, no outbox row
    key = key_of(pnr(5))
    for table in ("listing.person", "platform.person_identity", "listing.listing"):
        assert await db.fetchval(f"SELECT count(*) FROM {table} WHERE patient_key = $1", key) == 0
    assert await db.fetchval("SELECT count(*) FROM listing.outbox WHERE data->>'patient_key' = $1", key) == 0


async def test_rules_of_decide_apply_to_persons_the_register_knows(db, tmp_path):
    dead = key_of(pnr(1))
    await reference.upsert_person(db, dead, population_status="deceased", home_region="19", birth_date=None,
                                  status_date=AS_OF - timedelta(days=3))
    path = write_extract(tmp_path / "LISTINGS.csv", [(pnr(1), UNIT_A, DOCTOR_A1, "tillsvidare")], header=False)

    report = await run_import(db, path)

    rejected = finding(report, "rejected_person_deceased")
    assert (rejected.rule_id, rejected.lines) == ("P1", [1])
    assert await db.fetchval("SELECT count(*) FROM listing.listing") == 0


async def test_the_cli_never_prints_an_invalid_personnummer(migrated_database, db, tmp_path):
    bad = invalid_pnr()
    path = write_extract(tmp_path / "LISTINGS.csv", [(pnr(1), UNIT_A, "", ""), (bad, UNIT_A, DOCTOR_A1, "")],
                         delimiter=";")
    report_path = tmp_path / "report.json"
    env = {"FLK_DATABASE_URL": migrated_database, "FLK_PSEUDONYM_KEY": DEV_PSEUDONYM_KEY,
           "FLK_IDENTITY_VAULT_KEY": DEV_VAULT_KEY}
    args = [str(path), "--profile", "vastmanland", "--as-of", AS_OF.isoformat(), "--report-json", str(report_path)]

    result = await asyncio.to_thread(CliRunner().invoke, import_extract, args, env=env)

    assert result.exit_code == 1, result.output
    assert "invalid_person_id: 1 rows" in result.stdout and "lines: 3" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["imported"]["listings_started"] == 1
    for text in (result.stdout, result.stderr, report_path.read_text()):
        for form in (bad, bad.replace("-", ""), bad[2:]):
            assert form not in text


async def test_a_header_without_the_unit_column_stops_with_exit_code_2(migrated_database, db, tmp_path):
    path = tmp_path / "LISTINGS.csv"
    path.write_text(f"person_id,practitioner_id\n{pnr(1)},{DOCTOR_A1}\n", encoding="utf-8")
    env = {"FLK_DATABASE_URL": migrated_database}

    result = await asyncio.to_thread(CliRunner().invoke, import_extract, [str(path), "--profile", "national"], env=env)

    assert result.exit_code == 2
    assert "the header lacks the column(s) care_unit_id" in result.stderr
    assert pnr(1) not in result.output
