"""Presets: the synthetic regions the simulator can build.

* ``small``    — 4 000 people, 5 units, 12 months: for tests (< 5 s). Staffing ratios are scaled
  up (a doctor per 300 listed) so each small unit has several doctors.
* ``region``   — ~280 000 people, 30 units, 18 months: like Västmanland (län 19, Cosmic).
* ``national`` — ~10.5 million people in the 21 regions (rounded 2023 populations), 18 months,
  for benchmarks. Each region is split into *areas* of at most ``area_max_people`` people;
  the simulation holds one area in memory at a time, so memory is bounded by the area size.

Organisation numbers: the Västmanland-like presets use ``2321000016`` (HSA-ids
``SE2321000016-...``); the national preset uses synthetic ``23210<län:03d>16`` numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from tools.simulator.settings import SimSettings

#: Västmanland's municipalities (code, name, rough population) and unit names per municipality.
VASTMANLAND: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("1980", "Västerås", 160_000, (
        "Bäckby", "Hälla", "Skultuna", "Viksäng", "Råby", "Skiljebo", "Centrum", "Vallby",
        "Önsta-Gryta", "Pettersberg", "Kungsgatan", "Oxbacken", "Irsta", "Hemdal", "Skallberget",
        "Tillberga", "Björnön")),
    ("1983", "Köping", 26_000, ("Köping", "Ullvi")),
    ("1981", "Sala", 23_000, ("Sala", "Sala Väsby")),
    ("1961", "Hallstahammar", 16_500, ("Hallstahammar", "Kolbäck")),
    ("1984", "Arboga", 14_000, ("Arboga",)),
    ("1982", "Fagersta", 13_500, ("Fagersta", "Fagersta Brukskontoret")),
    ("1907", "Surahammar", 10_000, ("Surahammar",)),
    ("1960", "Kungsör", 8_600, ("Kungsör",)),
    ("1962", "Norberg", 5_700, ("Norberg",)),
    ("1904", "Skinnskatteberg", 4_400, ("Skinnskatteberg",)),
)

#: (län code, name, population) — rounded 2023 figures, sum ≈ 10.5 million.
SWEDISH_REGIONS: tuple[tuple[str, str, int], ...] = (
    ("01", "Stockholm", 2_450_000), ("03", "Uppsala", 400_000), ("04", "Södermanland", 300_000),
    ("05", "Östergötland", 470_000), ("06", "Jönköping", 370_000), ("07", "Kronoberg", 205_000),
    ("08", "Kalmar", 247_000), ("09", "Gotland", 61_000), ("10", "Blekinge", 157_000),
    ("12", "Skåne", 1_410_000), ("13", "Halland", 340_000), ("14", "Västra Götaland", 1_750_000),
    ("17", "Värmland", 283_000), ("18", "Örebro", 306_000), ("19", "Västmanland", 280_000),
    ("20", "Dalarna", 288_000), ("21", "Gävleborg", 288_000), ("22", "Västernorrland", 243_000),
    ("23", "Jämtland", 132_000), ("24", "Västerbotten", 275_000), ("25", "Norrbotten", 250_000),
)

EHR_BY_REGION = {"01": "takecare", "12": "melior", "14": "melior", "19": "cosmic", "08": "cosmic", "07": "cosmic"}


@dataclass(frozen=True)
class AreaSpec:
    """A part of a region simulated on its own: its units, roster and population."""

    index: int  # global, unique over the whole preset (seeds the area's random streams)
    region_code: str
    region_name: str
    org_number: str  # 10 digits: HSA-ids are SE<org>-<local>
    people: int
    units: int
    # (municipality code, unit name) for each unit, in order
    unit_places: tuple[tuple[str, str], ...]
    source_system: str


@dataclass(frozen=True)
class Preset:
    name: str
    people: int
    months: int
    people_per_unit: int = 9_300
    min_units: int = 3
    national: bool = False
    area_max_people: int = 300_000
    settings: SimSettings = field(default_factory=SimSettings)

    def with_people(self, people: int) -> "Preset":
        return replace(self, people=people)

    def areas(self) -> list[AreaSpec]:
        if not self.national:
            units = max(self.min_units, round(self.people / self.people_per_unit))
            return [AreaSpec(0, "19", "Västmanland", "2321000016", self.people, units,
                             _vastmanland_places(units), "cosmic")]
        return list(_national_areas(self))


PRESETS: dict[str, Preset] = {
    # small units need proportionally more staff, or each would have one doctor and no continuity to measure
    "small": Preset("small", people=4_000, months=12, people_per_unit=800, min_units=5, settings=SimSettings(
        listed_per_specialist=300, listed_per_specialist_locum_unit=600, listed_per_st=1_000,
        listed_per_nurse=300, listed_per_physio=1_200, listed_per_psych=1_600)),
    "region": Preset("region", people=280_000, months=18),
    "national": Preset("national", people=10_500_000, months=18, national=True),
}


def get_preset(name: str, limit_people: int | None = None) -> Preset:
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
    if limit_people is not None:
        if limit_people < 1:
            raise ValueError("limit_people must be at least 1")
        preset = preset.with_people(min(limit_people, preset.people))
    return preset


def _vastmanland_places(units: int) -> tuple[tuple[str, str], ...]:
    """Spread `units` over the municipalities by population, naming them after real places."""
    total = sum(pop for _, _, pop, _ in VASTMANLAND)
    counts = [max(1, round(units * pop / total)) for _, _, pop, _ in VASTMANLAND]
    # trim or grow the largest municipality so the sum is exact
    while sum(counts) > units and max(counts) > 1:
        counts[counts.index(max(counts))] -= 1
    while sum(counts) > units:  # fewer units than municipalities: keep the largest ones
        counts[max(i for i, c in enumerate(counts) if c)] -= 1
    counts[0] += units - sum(counts)
    places: list[tuple[str, str]] = []
    for (code, town, _, names), count in zip(VASTMANLAND, counts):
        for i in range(count):
            base = names[i % len(names)]
            suffix = "" if i < len(names) else f" {i // len(names) + 1}"
            places.append((code, f"Vårdcentralen {base}{suffix}"))
    return tuple(places)


def _national_areas(preset: Preset):
    total = sum(pop for _, _, pop in SWEDISH_REGIONS)
    index = 0
    for lan, name, pop in SWEDISH_REGIONS:
        people = max(1, round(preset.people * pop / total))
        n_areas = max(1, math.ceil(people / preset.area_max_people))
        org = f"23210{int(lan):03d}16"
        for a in range(n_areas):
            share = people // n_areas + (1 if a < people % n_areas else 0)
            units = max(1, round(share / preset.people_per_unit))
            places = tuple(
                (f"{int(lan):02d}{(a * 7 + u % 7) % 100:02d}", f"Vårdcentral {name} {a + 1}-{u + 1}")
                for u in range(units)
            )
            yield AreaSpec(index, lan, name, org, share, units, places, EHR_BY_REGION.get(lan, "cosmic"))
            index += 1
