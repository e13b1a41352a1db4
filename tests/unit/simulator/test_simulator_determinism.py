"""Same seed + preset → byte-identical output; another seed → another region."""
from __future__ import annotations

from pathlib import Path

import pytest

from tools.simulator.sinks import write_files
from tests.unit.simulator.conftest import END, small

pytestmark = pytest.mark.unit


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    write_files(small(limit_people=1500), tmp_path / "a")
    write_files(small(limit_people=1500), tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(a) >= {"VISITS.csv", "LISTINGS.csv", "listing_extract.csv", "ehr.visits.v1.jsonl",
                      "listing.commands.v1.jsonl", "population.persons.v1.jsonl", "summary.json"}
    assert a == b


def test_same_seed_gives_the_same_stream_twice_from_one_simulation() -> None:
    sim = small(limit_people=800)
    assert list(sim.stream()) == list(sim.stream())


def test_a_different_seed_gives_a_different_region() -> None:
    one = [(e.event_type, e.data) for e in small(seed=1, limit_people=800).events()]
    two = [(e.event_type, e.data) for e in small(seed=2, limit_people=800).events()]
    assert one != two
    keys_one = {d["patient_key"] for t, d in one if t == "person.registered.v1"}
    keys_two = {d["patient_key"] for t, d in two if t == "person.registered.v1"}
    assert len(keys_one & keys_two) < len(keys_one) // 10


def test_no_wall_clock_in_the_data(small_run) -> None:
    """Everything is dated inside the simulated period (or before it: histories), never today."""
    sim, items = small_run
    last = END.isoformat()
    for item in items:
        for value in item.data.values():
            if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[:2] in ("19", "20"):
                assert value[:10] <= last, (item.event_type, value)
