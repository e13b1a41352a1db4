"""Deterministic generation of a synthetic region's event stream.

``Simulation(preset, seed, end_date).stream()`` yields :class:`Emitted` items — ``(event_type,
data, at)`` with ``at`` the simulation clock in seconds since the Unix epoch (UTC). The same
preset, seed, end date, people count and pseudonymisation key give the same stream, item for
item: every random draw comes from ``random.Random`` seeded with strings derived from the seed
(never ``hash()``, never the wall clock), and nothing iterates over a set or an unordered
mapping.

Two kinds of items:

* contract events (``event_type`` such as ``visit.recorded.v1``): ``data`` passes
  ``flk.events.envelope.make_record``; this is what an EHR, the roster, the population register,
  the ACG run and the municipalities would publish (commands for the listing service included);
* file-only facts, ``event_type`` starting with ``sim.`` (never published): the units and lists
  (no contract event carries them), the listing import extract rows (the only place with
  personnummer), ``sim.visit_voided`` just before a visit that will later be cancelled (so the
  VISITS.csv writer can leave it out without buffering) and, at the end of each area, the
  resulting listing facts (``sim.listing_fact``) for LISTINGS.csv.

Ordering and memory. A preset is a list of *areas* (the whole region for ``small`` and
``region``; the national preset splits each region into areas of at most 300 000 people). An
area is simulated on its own and holds only its own units, roster and persons (a few hundred
bytes per person); areas follow each other. Within an area the stream is time-ordered: first the
opening state at the start instant (roster, then the persons chunk by chunk as they are created,
so the first events come at once even for a large area), then month by month — each month's
events are generated, sorted by time (stable) and yielded, so at most one month of one area's
events is in memory. Each person's events are always in time order (what Kafka keeps: order per
key); across areas of the national preset the clock restarts.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, Iterator

from flk.dates import add_months
from tools.simulator.area_behaviour import BehaviourMixin
from tools.simulator.area_persons import PersonsMixin
from tools.simulator.area_roster import RosterMixin

# Emitted, SIM_PREFIX, iso_time, main_care_in_residence, personnummer12, rub_transitions and ts are named
# from here by the sinks, the main job and the tests
from tools.simulator.common import (  # noqa: F401
    _AT,
    DAY,
    EPOCH,
    NURSE,
    SIM_PREFIX,
    Emitted,
    iso_date,
    iso_time,
    main_care_in_residence,
    personnummer12,
    rub_transitions,
    ts,
)
from tools.simulator.model import (
    Person,
    Role,
    Unit,
)
from tools.simulator.presets import AreaSpec, Preset, get_preset
from tools.simulator.settings import SimSettings

# --------------------------------------------------------------------------- summary


@dataclass
class Summary:
    preset: str
    seed: int
    start: str
    end: str
    areas: int = 0
    people_registered: int = 0
    people_at_end: int = 0
    units: int = 0
    doctors: int = 0  # doctor roles over the period (replacements included)
    other_staff: int = 0
    doctors_left: int = 0
    visits: int = 0
    visits_cancelled: int = 0
    history_visits: int = 0  # before the period (published at its start)
    history_visits_cancelled: int = 0
    events: Counter = field(default_factory=Counter)
    opening: Counter = field(default_factory=Counter)  # coverage counts at the start
    closing: Counter = field(default_factory=Counter)  # ... and at the end
    # unit hsa id -> [doctor visits of patients with an active FLK at their unit, of which with the FLK]
    unit_continuity: dict[str, list[int]] = field(default_factory=dict)
    extract_violations: Counter = field(default_factory=Counter)
    # P3: requests by one of two guardians, and the second guardian's answers sent in the period
    guardian_consent: Counter = field(default_factory=Counter)

    @staticmethod
    def coverage(counts: Counter) -> dict[str, float | None]:
        def share(a: str, b: str) -> float | None:
            return round(counts[a] / counts[b], 4) if counts[b] else None

        return {
            "named_flk_of_population": share("named", "population"),
            "named_flk_of_listed": share("named", "listed"),
            "fictive_of_listed": share("fictive", "listed"),
            "sabo_share": share("sabo", "population"),
            "sabo_named_flk": share("sabo_named", "sabo"),
            "rub45_named_flk": share("rub45_named", "rub45"),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset, "seed": self.seed, "start": self.start, "end": self.end,
            "areas": self.areas, "people_registered": self.people_registered,
            "people_at_end": self.people_at_end, "units": self.units, "doctors": self.doctors,
            "other_staff": self.other_staff, "doctors_left": self.doctors_left,
            "visits": self.visits, "visits_cancelled": self.visits_cancelled,
            "history_visits": self.history_visits, "history_visits_cancelled": self.history_visits_cancelled,
            "events": dict(sorted(self.events.items())),
            "coverage_at_start": self.coverage(self.opening),
            "coverage_at_end": self.coverage(self.closing),
            "kpc_by_unit": {
                unit: round(hits / total, 4) if total else None
                for unit, (total, hits) in self.unit_continuity.items()
            },
            "extract_violations": dict(sorted(self.extract_violations.items())),
            "guardian_consent": {k: self.guardian_consent[k]
                                 for k in ("one_guardian_requests", "consents", "refusals", "unanswered")},
        }


# --------------------------------------------------------------------------- the simulation


class Simulation:
    """A seeded synthetic region. ``stream()`` may be called more than once (same items)."""

    def __init__(
        self,
        preset: str | Preset = "small",
        seed: int = 42,
        end_date: date | None = None,
        limit_people: int | None = None,
        pseudonym_key: bytes | None = None,
        settings: SimSettings | None = None,
    ) -> None:
        if isinstance(preset, str):
            preset = get_preset(preset, limit_people)
        elif limit_people is not None:
            preset = preset.with_people(min(limit_people, preset.people))
        if settings is not None:
            from dataclasses import replace

            preset = replace(preset, settings=settings)
        if pseudonym_key is None:
            from flk.settings import PlatformSettings

            pseudonym_key = PlatformSettings().pseudonym_key.get_secret_value().encode()
        self.preset = preset
        self.settings = preset.settings
        self.seed = seed
        self.end_date = end_date or date.today()
        self.start_date = add_months(self.end_date + timedelta(days=1), -preset.months)
        #: from this date the simulated visit data are complete (the history before the period)
        self.history_start = add_months(self.start_date, -self.settings.history_months)
        self.key = pseudonym_key
        self.areas = preset.areas()
        self.summary = self._new_summary()
        self._people_done = 0
        self._current: _Area | None = None

    def _new_summary(self) -> Summary:
        return Summary(self.preset.name, self.seed, self.start_date.isoformat(), self.end_date.isoformat(),
                       areas=len(self.areas))

    @property
    def source(self) -> str:
        return f"/tools/simulator/{self.preset.name}"

    def progress(self) -> float:
        """How far the stream is, 0–1, by simulated time weighted by the areas' people."""
        total = sum(a.people for a in self.areas) or 1
        done = self._people_done
        if self._current is not None:
            done += self._current.spec.people * self._current.fraction_done()
        return min(1.0, done / total)

    def clock(self) -> str:
        return iso_date(self._current.clock // DAY + EPOCH) if self._current else self.start_date.isoformat()

    def stream(self) -> Iterator[Emitted]:
        self.summary = self._new_summary()
        self._people_done = 0
        counts = self.summary.events
        for spec in self.areas:
            area = self._current = _Area(self, spec)
            for item in area.run():
                counts[item.event_type] += 1
                yield item
            self._people_done += spec.people
            self._current = None

    def events(self) -> Iterator[Emitted]:
        """Only the contract events (what goes to Kafka)."""
        return (e for e in self.stream() if not e.event_type.startswith(SIM_PREFIX))


# --------------------------------------------------------------------------- one area


class _Area(RosterMixin, PersonsMixin, BehaviourMixin):
    """One area of the region: its units and staff (area_roster), its people (area_persons) and
    what happens month by month (area_behaviour); the run is here."""

    def __init__(self, sim: Simulation, spec: AreaSpec) -> None:
        self.sim = sim
        self.spec = spec
        self.s = s = sim.settings
        self.summary = sim.summary
        self.base = f"{sim.seed}:{spec.index}"
        self.a = spec.index
        self.start = sim.start_date.toordinal()
        self.end_excl = sim.end_date.toordinal() + 1
        self.start_ts = ts(self.start)
        self.end_ts = ts(self.end_excl)
        self.clock = self.start_ts
        self.units: list[Unit] = []
        self.roles: list[Role] = []
        self.persons: list[Person] = []
        self.used_ids: set[int] = set()
        self.visit_seq = 0
        self.history_seq = 0
        self.role_seq = 0
        self.serial = 0
        self.pending: list[Emitted] = []
        # birth numbers: national areas use disjoint residue classes so ids never collide
        self.id_stride = len(sim.areas)
        self.id_offset = spec.index % self.id_stride
        self.id_slots = (999 - self.id_offset) // self.id_stride + 1
        # tables
        bands = s.age_bands
        total = sum(b[2] for b in bands)
        self.age_bands = [(lo, hi, share / total) for lo, hi, share in bands]
        self.age_cum = list(accumulate(b[2] for b in self.age_bands))
        rub_total = sum(s.rub_shares)
        self.rub_cum = list(accumulate(x / rub_total for x in s.rub_shares))
        self.rub_up, self.rub_down = rub_transitions(s.rub_shares, s.rub_drift)
        mean_mult = sum(m * x / rub_total for m, x in zip(s.flk_rub_multiplier, s.rub_shares))
        self.rub_mult = [m / mean_mult for m in s.flk_rub_multiplier]
        self.death_month = [
            max(s.death_floor, min(0.6, s.death_a * math.exp(s.death_b * age))) / 12 for age in range(111)
        ]
        other_total = sum(w for _, w in s.other_professions)
        self.other_cats: list[str] = []
        self.other_cum: list[float] = []
        acc = 0.0
        nurse_share = sum(w for p, w in s.other_professions if p in ("distriktssköterska", "sjuksköterska"))
        for cat, weight in ((NURSE, nurse_share),
                            *((p, w) for p, w in s.other_professions
                              if p not in ("distriktssköterska", "sjuksköterska"))):
            acc += weight / other_total
            self.other_cats.append(cat)
            self.other_cum.append(acc)
        self.staff: list[dict[str, tuple[list[Role], list[float] | None]]] = []
        # P3: the guardians and the second guardian's answers have streams of their own, so that the
        # rest of the stream does not depend on how many draws they take
        self.guardian_rng = random.Random(f"{self.base}:guardians")
        self.consent_rng = random.Random(f"{self.base}:consent")

    # ------------------------------------------------------------------ progress

    def fraction_done(self) -> float:
        """The opening (creating the people) counts as the first 10 %, then simulated time."""
        span = self.end_ts - self.start_ts
        opening = min(1.0, len(self.persons) / self.spec.people) if self.spec.people else 1.0
        timed = max(0.0, min(1.0, (self.clock - self.start_ts) / span)) if span else 1.0
        return 0.1 * opening + 0.9 * timed

    # ------------------------------------------------------------------ the run

    def run(self) -> Iterator[Emitted]:
        self._build_units()
        at = self.start_ts
        for unit in self.units:
            yield Emitted("sim.unit", {
                "care_unit_id": unit.hsa_id, "name": unit.name, "municipality_code": unit.municipality_code,
                "region_code": self.spec.region_code, "relies_on_locums": unit.relies_on_locums,
            }, at)
            for fl in unit.fictive_lists:
                yield Emitted("sim.list", {
                    "list_id": fl.list_id, "care_unit_id": unit.hsa_id, "display_name": fl.display_name,
                    "list_kind": "fictive", "role_id": "", "practitioner_id": "",
                }, at)
            # the region's unit register: every simulated unit has run under contract for years (L3)
            yield Emitted("care_unit.contracted.v1", {
                "care_unit_id": unit.hsa_id, "name": unit.name, "region_code": self.spec.region_code,
                "contract_from": iso_date(self.start - 3653), "contract_to": None, "listing_limit": None,
                "fictive_lists": [{"list_id": fl.list_id, "name": fl.display_name} for fl in unit.fictive_lists],
                "recorded_at": iso_time(at),
            }, at)
        for role in self.roles:
            if role.valid_from < self.start:
                yield from self._role_started(role, at)
        first_month_end = min(add_months(self.sim.start_date, 1).toordinal(), self.end_excl)
        self._staff_for(self.start, first_month_end)
        yield from self._opening()
        self._stats(self.summary.opening)
        timeline = self._roster_timeline()
        cursor = 0
        k = 0
        while True:
            ms = add_months(self.sim.start_date, k).toordinal()
            if ms >= self.end_excl:
                break
            me = min(add_months(self.sim.start_date, k + 1).toordinal(), self.end_excl)
            batch: list[Emitted] = []
            me_ts = ts(me)
            while cursor < len(timeline) and timeline[cursor][0] < me_ts:
                when, kind, role = timeline[cursor]
                cursor += 1
                if kind == 0:
                    batch.extend(self._role_started(role, when))
                else:
                    batch.append(self._role_ended(role, when))
            self._staff_for(ms, me)
            self._month(k, ms, me, batch)
            keep = []
            for item in self.pending:  # cancellations of earlier visits that fall in this month
                (batch if item.at < me_ts else keep).append(item)
            self.pending = keep
            batch.sort(key=_AT)
            for item in batch:
                self.clock = item.at
                yield item
            self.clock = me_ts
            k += 1
        self._stats(self.summary.closing)
        end_at = self.end_ts - 1
        for p in self.persons:
            if p.gone:
                continue
            self.summary.people_at_end += 1
            if p.unit < 0:
                continue
            yield Emitted("sim.listing_fact", {
                "patient_id": p.key,
                "care_unit_id": self.units[p.unit].hsa_id,
                "fast_lakarkontakt_id": p.flk.practitioner_id if p.flk else "",
                "list_id": p.flk.list_id if p.flk else (p.fictive.list_id if p.fictive else ""),
                "list_kind": "doctor" if p.flk else ("fictive" if p.fictive else ""),
            }, end_at)
        self.clock = self.end_ts

    def _stats(self, counts: Counter) -> None:
        day = self.start if counts is self.summary.opening else self.end_excl - 1
        for p in self.persons:
            if p.gone:
                continue
            counts["population"] += 1
            named = p.flk is not None and p.flk.active_on(day)
            if p.unit >= 0:
                counts["listed"] += 1
                counts["named"] += named
                counts["fictive"] += p.fictive is not None
            if p.sabo:
                counts["sabo"] += 1
                counts["sabo_named"] += named
            if p.rub >= 4:
                counts["rub45"] += 1
                counts["rub45_named"] += named

    def _opening(self) -> Iterator[Emitted]:
        """The state at the start instant, one chunk of persons at a time."""
        s = self.s
        rng = random.Random(f"{self.base}:opening")
        history_rng = random.Random(f"{self.base}:history")  # its own stream: the period is unchanged by it
        at = self.start_ts
        chunk = 2_000
        made = 0
        while made < self.spec.people:
            out: list[Emitted] = []
            for _ in range(min(chunk, self.spec.people - made)):
                p, pnr = self._new_person(rng, self.start, opening=True)
                self.persons.append(p)
                out.append(self._registered(p, at))
                out.append(self._risk(p, 0, at))
                if p.sabo:
                    out.append(self._residence(p, self.start - rng.randrange(1, 3 * 365), None, at))
                if p.unit >= 0:
                    out.extend(self._open_listing(rng, p, at))
                    out.extend(self._extract_rows(rng, p, pnr, at))
            made += chunk
            yield from out
        history: list[Emitted] = []
        for p in self.persons:
            self._history(history_rng, p, history.append)
            if len(history) >= chunk:  # (yielded as made: the same items in the same order)
                yield from history
                history = []
        yield from history
