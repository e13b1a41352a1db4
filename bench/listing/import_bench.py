"""Benchmark: `flk listing import` on a large synthetic extract, against the real PostgreSQL of
`flk infra up` (a fresh database with the migrations and a register of units and doctors).

Phases, in one run (ratios are against the baseline of the same run):
  baseline   csv.reader over the file, nothing else
  dry run    both passes: checks, person index, decide() per row with the register read (no writes)
  import     the same, writing persons, vault rows, listings, FLK assignments and outbox rows in one
             transaction (a savepoint per row)
  re-import  the same file again (a no-op: every row is already in the register)

    python -m bench.listing.import_bench --persons 100000 --units 20 --doctors 10
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import random
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from tools.migrations import migrate
from tools.infra.prune import Throwaway
from tools.infra.settings import InfraSettings
from flk.security.vault import IdentityVault
from flk.settings import DEV_VAULT_KEY
from tools.simulator.generate import personnummer12
from services.listing.adapters import reference
from services.listing.service_layer.importer import ImportOptions, ListingImport

KEY = b"bench-pseudonymisation-key"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_extract(path: Path, persons: int, units: int, doctors: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(("person_id", "care_unit_id", "practitioner_id", "employment_type"))
        for n in range(persons):
            birth = date(1930, 1, 1) + timedelta(days=n // 900 % 30000)
            number = personnummer12(birth, 100 + n % 900)
            u = rng.randrange(units)
            r = rng.random()
            if r < 0.001:
                number = number[:-1] + str((int(number[-1]) + 1) % 10)  # invalid
            if r < 0.25:
                w.writerow((number, f"SE-U{u:03d}", "", ""))
            elif r < 0.28:
                w.writerow((number, f"SE-U{u:03d}", f"SE-U{u:03d}-HYR", "hyr"))
            else:
                w.writerow((number, f"SE-U{u:03d}", f"SE-U{u:03d}-D{rng.randrange(doctors):02d}", "tillsvidare"))
            if r > 0.999:  # several listings (L1)
                w.writerow((number, f"SE-U{(u + 1) % units:03d}", "", ""))


async def register(dsn: str, units: int, doctors: int, start: date) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for u in range(units):
            unit = f"SE-U{u:03d}"
            await reference.upsert_unit(conn, reference.UnitSpec(unit, f"Vårdcentral {u}", "19"))
            await reference.add_contract(conn, unit, start, None)
            roles = [(f"{unit}-D{d:02d}", "tillsvidare") for d in range(doctors)] + [(f"{unit}-HYR", "hyr")]
            for practitioner, employment in roles:
                await reference.upsert_role(conn, {
                    "role_id": f"role-{practitioner}", "practitioner_id": practitioner, "care_unit_id": unit,
                    "profession": "läkare", "legitimerad": True, "employment_type": employment,
                    "specialty": "allmanmedicin", "fte": 1.0, "valid_from": start.isoformat()})
    finally:
        await conn.close()


async def timed(dsn: str, path: Path, as_of: date, dry_run: bool):
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        report = await ListingImport(conn, ImportOptions(path, "vastmanland", as_of, dry_run),
                                     KEY, IdentityVault(DEV_VAULT_KEY)).run()
        return time.perf_counter() - started, report
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    as_of = date.today() - timedelta(days=1)
    async with Throwaway(InfraSettings(), "bench") as mine:  # its database is dropped afterwards
        dsn = await mine.database()
        await migrate(dsn)
        await register(dsn, args.units, args.doctors, as_of - timedelta(days=365))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "LISTINGS.csv"
            write_extract(path, args.persons, args.units, args.doctors, args.seed)
            started = time.perf_counter()
            with path.open(newline="", encoding="utf-8") as f:
                rows = sum(1 for _ in csv.reader(f)) - 1
            baseline = time.perf_counter() - started
            print(f"extract: {rows} rows, {path.stat().st_size / 1e6:.1f} MB; "
                  f"{args.units} units x {args.doctors} doctors; peak RSS {peak_rss_mb():.0f} MB")
            print(f"{'phase':<10} {'seconds':>8} {'rows/s':>10} {'x baseline time':>16} {'peak RSS MB':>12}")
            print(f"{'baseline':<10} {baseline:8.2f} {rows / baseline:10.0f} {1:16.1f} {peak_rss_mb():12.0f}")
            for phase, dry in (("dry run", True), ("import", False), ("re-import", False)):
                seconds, report = await timed(dsn, path, as_of, dry)
                print(f"{phase:<10} {seconds:8.2f} {rows / seconds:10.0f} {seconds / baseline:16.1f} "
                      f"{peak_rss_mb():12.0f}   listings {report.listings_started}, named "
                      f"{report.named_assigned}, fictive {report.fictive_assigned}, violations {report.violations}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--doctors", type=int, default=10, help="doctors per unit (plus one locum)")
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
