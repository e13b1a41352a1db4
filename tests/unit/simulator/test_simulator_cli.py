"""`flk simulate` end to end on files, and the files in the continuity baseline CLI."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tools.cli import main
from services.continuity.entrypoints.cli import continuity

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def sim_files(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("sim")
    result = CliRunner().invoke(main, ["simulate", "--preset", "small", "--seed", "42", "--end-date", "2026-06-30",
                                       "--to", "files", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_simulate_prints_a_summary(sim_files) -> None:
    _, output = sim_files
    for text in ("people:", "units: 5", "doctors:", "visits:", "visit.recorded.v1", "coverage at start", "items/s"):
        assert text in output


def test_the_baseline_cli_reads_the_files(sim_files) -> None:
    out, _ = sim_files
    result = CliRunner().invoke(continuity, ["indices", "--visits", str(out / "VISITS.csv"),
                                             "--listings", str(out / "LISTINGS.csv"), "--as-of", "2026-06-30"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    listings = {r["patient_id"]: r for r in csv.DictReader((out / "LISTINGS.csv").open(encoding="utf-8"))}
    eligible = [r for r in rows if r["doctor"]["eligible"] and r["patient_id"] in listings]
    assert len(eligible) > 200
    with_flk = [r["doctor"]["coc"] for r in eligible if listings[r["patient_id"]]["fast_lakarkontakt_id"]]
    without = [r["doctor"]["coc"] for r in eligible if not listings[r["patient_id"]]["fast_lakarkontakt_id"]]
    assert sum(with_flk) / len(with_flk) > sum(without) / len(without) + 0.1
    assert all(r["doctor"]["kpc"] is not None for r in eligible if listings[r["patient_id"]]["fast_lakarkontakt_id"])


def test_visits_csv_leaves_out_cancelled_visits(sim_files) -> None:
    out, _ = sim_files
    cancelled = {json.loads(line)["data"]["visit_id"] for line in (out / "ehr.visits.v1.jsonl").open()
                 if '"se.flk.visit.cancelled.v1"' in line}
    visits = {r["visit_id"] for r in csv.DictReader((out / "VISITS.csv").open(encoding="utf-8"))}
    summary = json.loads((out / "summary.json").read_text())
    assert cancelled and not cancelled & visits
    assert len(visits) == (summary["visits"] + summary["history_visits"]
                           - summary["visits_cancelled"] - summary["history_visits_cancelled"])


def test_listing_extract_has_the_import_columns_and_the_answer_key(sim_files) -> None:
    out, _ = sim_files
    with (out / "listing_extract.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == ["personnummer", "care_unit_id", "doctor_id", "doctor_employment_type"]
    summary = json.loads((out / "summary.json").read_text())
    answers = list(csv.DictReader((out / "listing_extract_violations.csv").open()))
    assert len(answers) == sum(summary["extract_violations"].values())
    assert {a["violation"] for a in answers} == {"locum_as_flk", "duplicate_listing", "unknown_unit",
                                                  "invalid_personnummer"}
    extract_rows = sum(1 for _ in (out / "listing_extract.csv").open()) - 1
    assert 0.005 <= len(answers) / extract_rows <= 0.02


def test_files_need_an_out_folder() -> None:
    result = CliRunner().invoke(main, ["simulate", "--to", "files"])
    assert result.exit_code == 2 and "--out" in result.output


def test_null_sink_with_limit_people(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--preset", "region", "--limit-people", "2000",
                                       "--end-date", "2026-06-30", "--to", "null", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "people: 2," in result.output
