"""`flk continuity indices` (the batch baseline): the pure engine against the polars engine, in one run.

    python bench/continuity/baseline_bench.py                       # 1.2 M visits, 20 000 patients
    python bench/continuity/baseline_bench.py --large 10000000      # and a polars-only run at 10 M
    python bench/continuity/baseline_bench.py --engines polars --patients 400000 --compare-with /tmp/main-checkout
                                        # polars here against polars of another checkout, 3 rounds alternating

Writes a synthetic region extract (visits + listings CSV, in a temporary directory) and runs the real
CLI command once per engine, each in its own process (wall time, peak memory), and checks that the
engines' stdout is byte-identical.  The extract has what the pure path has rules for: personnummer
and patient keys, duplicate (re-sent) rows, cancelled rows, professions and contact types that do or
do not count (in varied spelling), times as dates, local date-times and date-times with an offset,
visits before the window and after *as of*, visits at other units than the listing unit, patients with
one or two FLKs and unlisted patients, and a few bad rows.  No infrastructure is needed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stdnum import luhn  # noqa: E402

from flk.security.pseudonym import PersonId, parse_person_id, patient_key  # noqa: E402
from services.continuity.adapters.visit_extract import platform_pseudonym_key  # noqa: E402

AS_OF = "2026-03-15"
UNITS = [f"SE2321000016-VC{i:03d}" for i in range(40)]
PROFESSIONS = ["läkare"] * 12 + ["Läkare"] + ["sjuksköterska"] * 5 + ["fysioterapeut"] * 2 + ["kurator"]
CONTACT_TYPES = ["besok"] * 8 + ["telefon"] * 3 + ["digital"] * 2 + ["hembesok", "", "Besök", "brev"]
HEADER = "patient_id,visit_id,practitioner_id,profession,care_unit_id,occurred_at,contact_type,cancelled_at,cancel_reason\n"


def person_number(i: int) -> str:
    birth = datetime(1940, 1, 1) + timedelta(days=i // 1000)  # unique for i < 25 M
    body = f"{birth:%y%m%d}{i % 1000:03d}"
    return f"{birth.year // 100}{body}{luhn.calc_check_digit(body)}"


def write_extract(directory: Path, visits: int, patients: int, seed: int = 1) -> tuple[Path, Path]:
    """visits.csv and listings.csv of a synthetic region."""
    rng = random.Random(seed)
    ids = []
    for i in range(patients):
        if i % 4 == 0:
            ids.append(person_number(i))
        else:
            ids.append(patient_key(PersonId("personnummer", f"19{i:010d}"), b"bench"))
    home = [rng.choice(UNITS) for _ in range(patients)]
    staff = {u: [f"{u}-P{j:02d}" for j in range(25)] for u in UNITS}
    start = datetime(2024, 3, 1)
    span = int((datetime(2026, 4, 1) - start).total_seconds() // 60)
    visits_path, listings_path = directory / "visits.csv", directory / "listings.csv"
    secret = platform_pseudonym_key()
    with listings_path.open("w", encoding="utf-8") as out:  # listings carry the patient key (see docs/benchmarks.md)
        out.write("patient_id,care_unit_id,fast_lakarkontakt_id\n")
        for i in range(patients):
            if i % 10 == 9:
                continue  # unlisted
            pk = patient_key(parse_person_id(ids[i]), secret) if i % 4 == 0 else ids[i]
            out.write(f"{pk},{home[i]},{staff[home[i]][i % 5]}\n")
            if i % 10 == 3:
                out.write(f"{pk},{home[i]},{staff[home[i]][(i + 1) % 5]}\n")
    with visits_path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        lines = []
        previous = ""
        for n in range(visits):
            r = rng.random()
            if r < 0.01 and previous:
                lines.append(previous)  # re-sent row
                continue
            p = rng.randrange(patients)
            unit = home[p] if rng.random() < 0.8 else rng.choice(UNITS)
            who = staff[unit][min(int(rng.expovariate(0.5)), 24)]
            when = start + timedelta(minutes=rng.randrange(span))
            shape = rng.random()
            if shape < 0.2:
                at = f"{when:%Y-%m-%d}"
            elif shape < 0.3:
                at = f"{when:%Y-%m-%d %H:%M}"
            elif shape < 0.31:
                at = f"{when:%Y-%m-%dT%H:%M:%S}+01:00"
            else:
                at = f"{when:%Y-%m-%dT%H:%M:%S}"
            cancelled = ""
            if rng.random() < 0.03:
                cancelled = f"{when + timedelta(hours=2):%Y-%m-%dT%H:%M:%S},{rng.choice(('cancelled', 'no_show', ''))}"
            else:
                cancelled = ","
            if n % 200_000 == 7:
                at = "2025-02-30"  # a bad row
            previous = (f"{ids[p]},v{n},{who},{rng.choice(PROFESSIONS)},{unit},{at},"
                        f"{rng.choice(CONTACT_TYPES)},{cancelled}\n")
            lines.append(previous)
            if len(lines) >= 100_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
    return visits_path, listings_path


def run_engine(engine: str, visits: Path, listings: Path, out: Path, root: Path = ROOT
               ) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds (user + system, all threads), peak RSS in MB, stderr's summary line) of one
    CLI run of the code in ``root``."""
    code = ("import resource, sys\nfrom services.continuity.entrypoints.cli import continuity\n"
            "try:\n    continuity(prog_name='flk continuity')\nfinally:\n"
            "    print(f'peak_rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(root))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with out.open("wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-c", code, "indices", "--visits", str(visits), "--listings", str(listings),
             "--as-of", AS_OF, "--engine", engine, "--no-progress"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, check=False, cwd=root,
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode not in (0, 1):
        sys.exit(f"{engine} failed:\n{done.stderr[-2000:]}")
    err = done.stderr.splitlines()
    rss = next(int(x.split("=")[1]) for x in err if x.startswith("peak_rss_kb=")) / 1024
    summary = next(x for x in err if x.startswith("continuity indices as of"))
    return wall, cpu, rss, summary


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visits", type=int, default=1_200_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=0, help="also a polars-only run with this many visits")
    parser.add_argument("--large-patients", type=int, default=0, help="[default: visits / 60]")
    parser.add_argument("--engines", default="pure,polars")
    parser.add_argument("--compare-with", type=Path, help="a checkout of another commit (git archive ... | tar -x): "
                        "its polars engine against this one's on the same extract, 3 rounds alternating")
    args = parser.parse_args()
    print(f"{datetime.now():%Y-%m-%d %H:%M} load average before: {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="baseline-bench-") as tmp:
        directory = Path(tmp)
        t = time.perf_counter()
        visits, listings = write_extract(directory, args.visits, args.patients)
        print(f"extract: {args.visits:,} visit rows, {args.patients:,} patients, "
              f"{visits.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - t:.1f} s")
        results = {}
        for engine in args.engines.split(","):
            out = directory / f"{engine}.jsonl"
            wall, cpu, rss, summary = run_engine(engine, visits, listings, out)
            results[engine] = (wall, digest(out), cpu)
            print(f"  {engine:7s} wall {wall:7.2f} s ({args.visits / wall:>9,.0f} visits/s)  CPU {cpu:6.2f} s "
                  f"({args.visits / cpu:>9,.0f} visits/CPU-s)  peak {rss:,.0f} MB  load {os.getloadavg()[0]:.2f}  "
                  f"stdout sha256 {results[engine][1]}")
            print(f"          {summary}")
        if "pure" in results and "polars" in results:
            same = results["pure"][1] == results["polars"][1]
            print(f"  polars / pure: {results['pure'][0] / results['polars'][0]:.1f}x faster wall, "
                  f"{results['pure'][2] / results['polars'][2]:.1f}x less CPU; "
                  f"stdout {'IDENTICAL' if same else 'DIFFERENT'}")
            if not same:
                sys.exit(1)
        if args.compare_with:
            digests = set()
            for _ in range(3):
                for name, root in (("other", args.compare_with.resolve()), ("this", ROOT)):
                    out = directory / f"{name}.jsonl"
                    wall, cpu, rss, summary = run_engine("polars", visits, listings, out, root)
                    digests.add(digest(out))
                    print(f"  polars {name:5s} wall {wall:7.2f} s  CPU {cpu:6.2f} s  peak {rss:,.0f} MB  "
                          f"load {os.getloadavg()[0]:.2f}  stdout sha256 {digest(out)}")
            print(f"  stdout {'IDENTICAL' if len(digests) == 1 else 'DIFFERENT'} across the checkouts")
            if len(digests) != 1:
                sys.exit(1)
        if args.large:
            for f in directory.glob("*"):
                f.unlink()
            patients = args.large_patients or args.large // 60
            t = time.perf_counter()
            visits, listings = write_extract(directory, args.large, patients, seed=2)
            print(f"large extract: {args.large:,} visit rows, {patients:,} patients, "
                  f"{visits.stat().st_size / 1e6:.0f} MB, written in {time.perf_counter() - t:.1f} s")
            wall, cpu, rss, summary = run_engine("polars", visits, listings, directory / "large.jsonl")
            print(f"  polars  wall {wall:7.2f} s ({args.large / wall:>9,.0f} visits/s)  CPU {cpu:6.2f} s "
                  f"({args.large / cpu:>9,.0f} visits/CPU-s)  peak {rss:,.0f} MB  load {os.getloadavg()[0]:.2f}")
            print(f"          {summary}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
