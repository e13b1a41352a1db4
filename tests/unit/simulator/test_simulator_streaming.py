"""Streaming: generation is lazy (a generator), memory is bounded by one area."""
from __future__ import annotations

import inspect
import tracemalloc
from itertools import islice

import pytest

from tools.simulator.generate import Simulation
from tools.simulator.presets import get_preset
from tests.unit.simulator.conftest import END, KEY, small

pytestmark = pytest.mark.unit


def test_a_200_000_person_region_starts_streaming_at_once_without_materialising() -> None:
    sim = Simulation("region", seed=7, end_date=END, limit_people=200_000, pseudonym_key=KEY)
    stream = sim.stream()
    assert inspect.isgenerator(stream)
    tracemalloc.start()
    first = list(islice(stream, 20_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(first) == 20_000
    assert peak < 80 * 1024 * 1024  # a few chunks of people, not 200 000 of them
    assert sim.summary.people_registered < 20_000
    assert 0 < sim.progress() < 0.01
    stream.close()


def test_the_national_preset_is_split_into_bounded_areas() -> None:
    preset = get_preset("national")
    areas = preset.areas()
    assert sum(a.people for a in areas) == pytest.approx(10_500_000, rel=0.01)
    assert max(a.people for a in areas) <= preset.area_max_people
    assert len({a.index for a in areas}) == len(areas)
    assert len({a.region_code for a in areas}) == 21
    units = [a.org_number for a in areas]
    assert all(len(o) == 10 and o.isdigit() for o in units)


def test_a_national_slice_keeps_keys_unique_across_areas() -> None:
    sim = Simulation("national", seed=3, end_date=END, limit_people=21_000, pseudonym_key=KEY)
    keys = [e.data["patient_key"] for e in sim.events() if e.event_type == "person.registered.v1"]
    assert len(keys) == len(set(keys)) > 20_000
    assert sim.summary.areas == 21


def test_the_small_preset_streams_a_whole_region_to_its_end() -> None:
    # speed is the simulator's concern in bench/, not an assertion here (shared, noisy machines)
    sim = small()
    count = sum(1 for _ in sim.stream())
    assert count > 20_000
    assert sim.progress() == pytest.approx(1.0)
