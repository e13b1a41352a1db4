"""Every generated event passes its contract; ids look right; no personnummer leaks."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from flk.events.envelope import make_record
from flk.events.registry import registry
from flk.security.pseudonym import InvalidPersonId, is_patient_key, parse_person_id
from tools.simulator.generate import SIM_PREFIX, personnummer12
from tools.simulator.sinks import write_files
from tests.unit.simulator.conftest import small

pytestmark = pytest.mark.unit

HSA = re.compile(r"^SE[0-9]{10}-[0-9A-Za-z]{1,31}$")
PNR_LIKE = re.compile(rb"(?<![0-9])(19|20)[0-9]{6}-?[0-9]{4}(?![0-9])")


def test_every_event_of_the_small_preset_passes_make_record(small_run) -> None:
    sim, items = small_run
    seen: set[str] = set()
    for item in items:
        if item.event_type.startswith(SIM_PREFIX):
            continue
        record = make_record(item.event_type, item.data, source=sim.source,
                             time=datetime.fromtimestamp(item.at, tz=timezone.utc))
        assert record.topic == registry().topic_for(item.event_type).name
        seen.add(item.event_type)
    assert seen == {
        "practitioner_role.started.v1", "practitioner_role.ended.v1", "person.registered.v1", "person.updated.v1",
        "risk.assessed.v1", "residence.recorded.v1", "listing.request.v1", "fast_lakarkontakt.assign.v1",
        "visit.recorded.v1", "visit.cancelled.v1", "care_unit.contracted.v1", "listing.consent.v1",
    }


def test_ids_are_hsa_ids_and_patient_keys(small_run) -> None:
    _, items = small_run
    for item in items:
        for field in ("care_unit_id", "practitioner_id"):
            value = item.data.get(field)
            if value:
                assert HSA.match(value), value
        if "patient_key" in item.data:
            assert is_patient_key(item.data["patient_key"])
    units = [i.data["care_unit_id"] for i in items if i.event_type == "sim.unit"]
    assert all(u.startswith("SE2321000016-") for u in units)


def test_synthetic_personnummer_are_valid_and_unique() -> None:
    assert personnummer12(date(1981, 12, 18), 987) == "198112189876"  # the Skatteverket example 811218-9876
    parse_person_id("19811218-9876")


def test_extract_personnummer_are_valid_except_the_deliberate_ones(tmp_path: Path) -> None:
    sim = small()
    write_files(sim, tmp_path)
    import csv

    rows = list(csv.DictReader((tmp_path / "listing_extract.csv").open(encoding="utf-8")))
    answers = {int(r["row"]): r["violation"] for r in csv.DictReader((tmp_path / "listing_extract_violations.csv").open())}
    invalid = 0
    for number, row in enumerate(rows, start=1):
        try:
            parse_person_id(row["personnummer"])
        except InvalidPersonId:
            invalid += 1
            assert answers.get(number) == "invalid_personnummer"
    assert invalid == sim.summary.extract_violations["invalid_personnummer"] > 0
    valid = [r["personnummer"] for n, r in enumerate(rows, 1) if answers.get(n) != "invalid_personnummer"]
    duplicates = sim.summary.extract_violations["duplicate_listing"]
    assert len(valid) - len(set(valid)) == duplicates > 0


def test_no_personnummer_outside_the_listing_extract(tmp_path: Path) -> None:
    write_files(small(limit_people=1000), tmp_path)
    for path in tmp_path.iterdir():
        if path.name.startswith("listing_extract"):
            continue
        assert not PNR_LIKE.search(path.read_bytes()), path.name
