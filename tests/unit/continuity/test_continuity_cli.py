"""`flk continuity indices`: the batch baseline on small CSV files."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from services.continuity.domain.patient import EMPTY_STATE, Visit, compute_indices, record_visit, set_listing
from services.continuity.domain.settings import ContinuitySettings
from services.continuity.entrypoints.cli import continuity

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
VISIT_HEADER = "patient_id,visit_id,practitioner_id,profession,care_unit_id,occurred_at,contact_type"
LISTING_HEADER = "patient_id,care_unit_id,fast_lakarkontakt_id"


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(continuity, ["indices", *map(str, args)])


def lines(result: Result) -> dict[str, dict]:
    return {row["patient_id"]: row for row in map(json.loads, result.stdout.splitlines())}


@pytest.fixture
def visits_csv(tmp_path: Path) -> Path:
    return write(
        tmp_path / "visits.csv",
        VISIT_HEADER,
        [
            "p1,v1,A,läkare,U1,2025-01-10,besok",
            "p1,v2,A,läkare,U1,2025-02-10T09:00:00,telefon",
            "p1,v3,B,läkare,U1,2025-03-10,",
            "p1,v4,N,sjuksköterska,U1,2025-03-10,besok",
            "p1,v5,C,läkare,U2,2025-04-10,besok",
            "p2,v6,A,läkare,U2,2025-03-01,digital",
        ],
    )


@pytest.fixture
def listings_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "listings.csv", LISTING_HEADER, ["p1,U1,A", "p3,U1,"])


def test_every_patient_in_either_file_gets_one_json_line_sorted_by_patient(visits_csv: Path, listings_csv: Path) -> None:
    result = run("--visits", visits_csv, "--listings", listings_csv, "--as-of", "2025-06-30")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["patient_id"] for line in result.stdout.splitlines()] == ["p1", "p2", "p3"]
    p1 = lines(result)["p1"]
    assert p1["as_of"] == "2025-06-30"
    assert p1["doctor"] == {
        "visits": 3, "coc": 1 / 3, "upc": 2 / 3, "secon": 0.5, "hhi": 5 / 9,
        "mmci": pytest.approx((1 - 2 / 3.1) / (1 - 1 / 3.1)), "kpc": 2 / 3, "eligible": True,
    }  # fmt: skip
    assert p1["total"]["visits"] == 4  # the U2 visit is outside the listing unit


def test_listed_patient_without_visits_gets_zero_visits_and_null_indices(visits_csv: Path, listings_csv: Path) -> None:
    p3 = lines(run("--visits", visits_csv, "--listings", listings_csv, "--as-of", "2025-06-30"))["p3"]
    for key in ("doctor", "total"):
        assert p3[key] == {"visits": 0, "coc": None, "upc": None, "secon": None, "hhi": None, "mmci": None, "kpc": None, "eligible": False}


def test_patient_without_listing_counts_visits_at_all_units(visits_csv: Path) -> None:
    p1 = lines(run("--visits", visits_csv, "--as-of", "2025-06-30"))["p1"]
    assert p1["doctor"]["visits"] == 4 and p1["doctor"]["kpc"] is None


def test_scope_all_counts_visits_outside_the_listing_unit(visits_csv: Path, listings_csv: Path) -> None:
    result = run("--visits", visits_csv, "--listings", listings_csv, "--as-of", "2025-06-30", "--scope", "all")
    assert lines(result)["p1"]["doctor"]["visits"] == 4


def test_min_visits_sets_eligibility_but_indices_are_reported_anyway(visits_csv: Path, listings_csv: Path) -> None:
    result = run("--visits", visits_csv, "--listings", listings_csv, "--as-of", "2025-06-30", "--min-visits", "4")
    doctor = lines(result)["p1"]["doctor"]
    assert doctor["eligible"] is False and doctor["coc"] == 1 / 3


def test_visit_exactly_at_window_start_is_excluded_and_as_of_day_included(tmp_path: Path) -> None:
    visits = write(
        tmp_path / "v.csv",
        VISIT_HEADER,
        ["p,v1,A,läkare,U,2023-02-28,", "p,v2,A,läkare,U,2023-03-01,", "p,v3,A,läkare,U,2024-08-31T23:59:00,", "p,v4,A,läkare,U,2024-09-01,"],
    )
    assert lines(run("--visits", visits, "--as-of", "2024-08-31"))["p"]["doctor"]["visits"] == 2


def test_window_months_zero_counts_every_visit_up_to_as_of(tmp_path: Path) -> None:
    visits = write(tmp_path / "v.csv", VISIT_HEADER, ["p,v1,A,läkare,U,1999-01-01,", "p,v2,A,läkare,U,2024-08-31,", "p,v3,A,läkare,U,2024-09-01,"])
    result = run("--visits", visits, "--as-of", "2024-08-31", "--window-months", "0")
    assert lines(result)["p"]["doctor"]["visits"] == 2


def test_duplicate_visit_ids_in_the_file_count_once(tmp_path: Path) -> None:
    visits = write(tmp_path / "v.csv", VISIT_HEADER, ["p,v1,A,läkare,U,2025-01-01,", "p,v1,A,läkare,U,2025-01-01,", "p,v2,B,läkare,U,2025-01-02,"])
    assert lines(run("--visits", visits, "--as-of", "2025-06-30"))["p"]["doctor"]["visits"] == 2


def test_contact_type_column_is_optional(tmp_path: Path) -> None:
    visits = write(tmp_path / "v.csv", VISIT_HEADER.rsplit(",", 1)[0], ["p,v1,A,läkare,U,2025-01-01"])
    assert lines(run("--visits", visits, "--as-of", "2025-06-30"))["p"]["doctor"]["visits"] == 1


def test_bad_row_is_reported_with_its_line_number_and_skipped_with_exit_code_1(tmp_path: Path) -> None:
    visits = write(
        tmp_path / "v.csv",
        VISIT_HEADER,
        ["p,v1,A,läkare,U,2025-01-01,", "p,v2,A,läkare,U,2025-13-01,", "p,v3,,läkare,U,2025-01-03,", "q,v4,A,läkare"],
    )
    result = run("--visits", visits, "--as-of", "2025-06-30")
    assert result.exit_code == 1
    assert f"{visits}:3: skipped: bad occurred_at '2025-13-01'" in result.stderr
    assert f"{visits}:4: skipped: empty practitioner_id" in result.stderr
    assert f"{visits}:5: skipped: expected 7 fields, got 4" in result.stderr
    assert "3 bad rows skipped" in result.stderr
    assert list(lines(result)) == ["p"]  # q appears only in a bad row
    assert lines(result)["p"]["doctor"]["visits"] == 1


def test_second_listing_unit_for_a_patient_is_a_bad_row(tmp_path: Path, visits_csv: Path) -> None:
    listings = write(tmp_path / "l.csv", LISTING_HEADER, ["p1,U1,A", "p1,U1,B", "p1,U2,C"])
    result = run("--visits", visits_csv, "--listings", listings, "--as-of", "2025-06-30")
    assert result.exit_code == 1
    assert f"{listings}:4: skipped: patient already listed at U1" in result.stderr
    assert lines(result)["p1"]["doctor"]["kpc"] == 1.0  # A and B are both FLK, C is not


def test_missing_column_is_a_usage_error(tmp_path: Path) -> None:
    visits = write(tmp_path / "v.csv", "patient_id,visit_id", ["p,v1"])
    result = run("--visits", visits)
    assert result.exit_code == 2
    assert "lacks columns: practitioner_id, profession, care_unit_id, occurred_at" in result.stderr


def test_as_of_defaults_to_today(visits_csv: Path) -> None:
    assert lines(run("--visits", visits_csv))["p1"]["as_of"] == date.today().isoformat()


def test_progress_is_shown_on_stderr_when_asked(visits_csv: Path) -> None:
    result = run("--visits", visits_csv, "--progress")
    assert "visits: 6 rows, 2 patients" in result.stderr


def random_visit_rows(seed: int, n: int = 400) -> list[str]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        day = date(2023, 6, 1) + timedelta(days=rnd.randrange(800))
        time = f"T{rnd.randrange(8, 17):02d}:00:00" if rnd.random() < 0.5 else ""
        rows.append(
            f"p{rnd.randrange(25)},v{rnd.randrange(n)},{rnd.choice('ABCDE')},{rnd.choice(['läkare', 'läkare', 'ssk'])},"
            f"{rnd.choice(['U1', 'U1', 'U1', 'U2'])},{day.isoformat()}{time},{rnd.choice(['besok', 'telefon', 'brev', ''])}"
        )
    return rows


def test_the_cli_agrees_exactly_with_the_stream_state_functions(tmp_path: Path) -> None:
    rows = random_visit_rows(seed=7)
    visits = write(tmp_path / "v.csv", VISIT_HEADER, rows)
    listings = write(tmp_path / "l.csv", LISTING_HEADER, [f"p{i},U1,{'AB'[i % 2]}" for i in range(0, 30, 2)])
    as_of = date(2025, 6, 30)
    result = run("--visits", visits, "--listings", listings, "--as-of", as_of.isoformat())
    assert result.exit_code == 0, result.output

    settings = ContinuitySettings()
    states = {f"p{i}": set_listing(EMPTY_STATE, "U1", ["AB"[i % 2]]) for i in range(0, 30, 2)}
    for line_number, row in enumerate(rows, start=2):  # as the worker would: one event at a time
        patient, visit_id, practitioner, profession, unit, occurred_at, contact = row.split(",")
        when = date.fromisoformat(occurred_at) if len(occurred_at) == 10 else datetime.fromisoformat(occurred_at)
        visit = Visit(visit_id, practitioner, profession, unit, when, line_number, contact or None)
        states[patient] = record_visit(states.get(patient, EMPTY_STATE), visit, as_of, settings)
    expected = {p: {"patient_id": p, **compute_indices(s, as_of, settings).to_json_dict()} for p, s in states.items()}
    assert lines(result) == expected


def test_rows_in_any_order_give_the_same_indices_except_same_time_ties(tmp_path: Path) -> None:
    rows = [r for r in random_visit_rows(seed=3) if "T" in r.split(",")[5]]  # timed visits: no ties by date
    rows = list({r.split(",")[1]: r for r in rows}.values())  # unique visit ids
    rows = list({(r.split(",")[0], r.split(",")[5]): r for r in rows}.values())  # no same-time ties
    shuffled = random.Random(1).sample(rows, len(rows))
    first = run("--visits", write(tmp_path / "a.csv", VISIT_HEADER, rows), "--as-of", "2025-06-30")
    second = run("--visits", write(tmp_path / "b.csv", VISIT_HEADER, shuffled), "--as-of", "2025-06-30")
    assert first.stdout == second.stdout


def test_flk_console_entry_point_runs_continuity_indices(visits_csv: Path, listings_csv: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tools.cli", "continuity", "indices", "--visits", str(visits_csv),
         "--listings", str(listings_csv), "--as-of", "2025-06-30"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert [json.loads(line)["patient_id"] for line in completed.stdout.splitlines()] == ["p1", "p2", "p3"]
