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
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from hashlib import blake2b
from bisect import bisect_left as _bisect
from itertools import accumulate
from operator import itemgetter
from statistics import NormalDist
from typing import Any, Iterator, NamedTuple

from stdnum import luhn

from flk.dates import add_months
from flk.security.pseudonym import PersonId, patient_key
from tools.simulator.model import (
    DOCTOR,
    LOCUM_TYPES,
    PERMANENT,
    ST,
    FictiveList,
    Person,
    Role,
    Unit,
)
from tools.simulator.presets import AreaSpec, Preset, get_preset
from tools.simulator.settings import SimSettings


def main_care_in_residence(key: str, elsewhere_share: float) -> bool:
    """Whether a SÄBO resident gets their main health care in the residence (the G3 qualifier): a fixed
    property of the person, drawn from a hash of their key so that it consumes no random numbers (the
    rest of the simulated stream is the same as without it) and every fact of the residence agrees."""
    draw = int.from_bytes(blake2b(key.encode(), digest_size=8, person=b"sabo-main-care").digest(), "little")
    return draw / 2 ** 64 >= elsewhere_share

SIM_PREFIX = "sim."
EPOCH = date(1970, 1, 1).toordinal()
DAY = 86_400
NURSE = "nurse"  # staff category: distriktssköterska and sjuksköterska
CATEGORIES = ("doctor", NURSE, "fysioterapeut", "psykolog", "kurator")
EXTRACT_VIOLATIONS = ("locum_as_flk", "duplicate_listing", "unknown_unit", "invalid_personnummer")
_NORMAL = NormalDist()
_AT = itemgetter(2)


class Emitted(NamedTuple):
    event_type: str
    data: dict[str, Any]
    at: int  # simulation clock, seconds since the Unix epoch (UTC)


def is_contract_event(event_type: str) -> bool:
    return not event_type.startswith(SIM_PREFIX)


# --------------------------------------------------------------------------- time helpers

_ISO_DATES: dict[int, str] = {}


def iso_date(day: int) -> str:
    text = _ISO_DATES.get(day)
    if text is None:
        text = _ISO_DATES[day] = date.fromordinal(day).isoformat()
    return text


def iso_time(at: int) -> str:
    day, secs = divmod(at, DAY)
    return f"{iso_date(day + EPOCH)}T{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}Z"


def ts(day: int, secs: int = 0) -> int:
    return (day - EPOCH) * DAY + secs


def personnummer12(birth: date, birth_number: int) -> str:
    body = f"{birth:%Y%m%d}{birth_number:03d}"
    return body + luhn.calc_check_digit(body[2:])  # over YYMMDDNNN


def rub_transitions(shares: tuple[float, ...], drift: float) -> tuple[list[float], list[float]]:
    """Per band, the probability of one step up and of one step down at an ACG run.

    A Metropolis birth-death chain: a step to a neighbouring band is proposed with ``drift`` and
    accepted with ``min(1, π(to) / π(from))``, so ``π = shares`` satisfies detailed balance and is
    the chain's stationary distribution: the bands' shares do not drift over time.
    """
    n = len(shares)
    up = [drift * min(1.0, shares[i + 1] / shares[i]) if i + 1 < n and shares[i] > 0 else 0.0 for i in range(n)]
    down = [drift * min(1.0, shares[i - 1] / shares[i]) if i > 0 and shares[i] > 0 else 0.0 for i in range(n)]
    return up, down


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation: never hit by people, only by area-level counts
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


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


class _Area:
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

    # ------------------------------------------------------------------ ids

    def _command_id(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _hsa(self, local: str) -> str:
        return f"SE{self.spec.org_number}-{local}"

    # ------------------------------------------------------------------ units and roster

    def _build_units(self) -> None:
        s, spec = self.s, self.spec
        rng = random.Random(f"{self.base}:units")
        n = spec.units
        weights = [0.6 + 0.8 * rng.random() for _ in range(n)]
        n_locum = min(n - 1, max(1 if n >= 2 else 0, round(n * s.locum_unit_share)))
        locum_units = set(rng.sample(range(n), n_locum)) if n_locum > 0 else set()
        spread = [(i + 0.5) / n for i in range(n)]
        order = list(range(n))
        rng.shuffle(order)
        nurse_order = list(range(n))
        rng.shuffle(nurse_order)
        lo, hi = s.kpc_with_flk_range
        ulo, uhi = s.usual_without_flk_range
        nlo, nhi = s.nurse_continuity_range
        flo, fhi = s.unit_flk_factor_range
        for i in range(n):
            code, name = spec.unit_places[i]
            q = spread[order[i]]
            locum = i in locum_units
            self.units.append(Unit(
                index=i,
                hsa_id=self._hsa(f"VC{self.a:03d}{i + 1:03d}"),
                name=name,
                municipality_code=code,
                relies_on_locums=locum,
                weight=weights[i],
                kpc_with_flk=lo + (hi - lo) * q,
                usual_without_flk=ulo + (uhi - ulo) * q,
                nurse_continuity=nlo + (nhi - nlo) * spread[nurse_order[i]],
                flk_factor=s.locum_unit_flk_factor if locum else flo + (fhi - flo) * rng.random(),
            ))
        total = sum(weights)
        self.unit_cum = list(accumulate(w / total for w in weights))
        self.summary.units += n
        for unit in self.units:
            self.summary.unit_continuity[unit.hsa_id] = [0, 0]
        self._build_roster(rng)

    def _build_roster(self, rng: random.Random) -> None:
        s = self.s
        listed_total = self.spec.people * (1 - s.unlisted_share)
        for unit in self.units:
            listed = listed_total * unit.weight / sum(u.weight for u in self.units)
            per_spec = s.listed_per_specialist_locum_unit if unit.relies_on_locums else s.listed_per_specialist
            plan: list[tuple[str, str]] = []
            plan += [(DOCTOR, PERMANENT)] * max(1, round(listed / per_spec))
            plan += [(DOCTOR, ST)] * round(listed / s.listed_per_st)
            if unit.relies_on_locums:
                plan += [(DOCTOR, rng.choice(LOCUM_TYPES))] * rng.randint(*s.locum_slots_range)
            nurses = max(1, round(listed / s.listed_per_nurse))
            plan += [("distriktssköterska" if k % 2 == 0 else "sjuksköterska", PERMANENT) for k in range(nurses)]
            plan += [("fysioterapeut", PERMANENT)] * max(1, round(listed / s.listed_per_physio))
            plan += [("psykolog", PERMANENT)] * max(1, round(listed / s.listed_per_psych))
            plan += [("kurator", PERMANENT)] * max(1, round(listed / s.listed_per_psych))
            locum_no = 0
            for slot, (profession, etype) in enumerate(plan):
                self._fill_slot(unit, slot, profession, etype, rng)
                if etype in LOCUM_TYPES:
                    locum_no += 1
                    unit.fictive_lists.append(FictiveList(
                        list_id=f"F-{unit.hsa_id}-{locum_no}",
                        unit=unit.index,
                        display_name=f"{unit.name} Dr {locum_no}",  # seed 001: "<VC> Dr X"
                        locum_slot=slot,
                    ))
            unit.roles.sort(key=lambda r: (r.valid_from, r.slot))
        self.roles.sort(key=lambda r: (r.valid_from, r.unit, r.slot))

    def _fill_slot(self, unit: Unit, slot: int, profession: str, etype: str, rng: random.Random) -> None:
        s = self.s
        locum = etype in LOCUM_TYPES
        if locum:
            t = self.start - rng.randrange(0, 180)
        elif etype == ST:
            t = self.start - rng.randrange(0, 4 * 365)
        else:
            t = self.start - rng.randrange(30, 12 * 365)
        first = True
        while t < self.end_excl:
            role = self._new_role(unit, slot, profession, etype, t, rng)
            base = self.start if first else t
            if locum:
                months = rng.randint(*s.locum_contract_months)
                length = rng.randrange(1, months * 30) if first else months * 30 + rng.randrange(30)
                end = base + length
            else:
                monthly = (s.leave_monthly_st if etype == ST else s.leave_monthly_permanent) if profession == DOCTOR \
                    else s.leave_monthly_other
                end = base + 1 + int(-math.log(1.0 - rng.random()) / monthly * 30.44)
            first = False
            if end >= self.end_excl:
                break
            role.valid_to = end
            gap = s.locum_replacement_gap_days if locum else s.replacement_gap_days
            t = end + rng.randint(*gap)

    def _new_role(self, unit: Unit, slot: int, profession: str, etype: str, valid_from: int,
                  rng: random.Random) -> Role:
        s = self.s
        self.role_seq += 1
        n = self.role_seq
        if profession == DOCTOR:
            prefix = "L"
            if etype == PERMANENT:
                fte = rng.choices((0.6, 0.8, 1.0), (2, 4, 4))[0]
            elif etype == ST:
                fte = 0.8 if rng.random() < 0.1 else 1.0
            else:
                fte = rng.choice((0.5, 0.8, 1.0))
        else:
            prefix = {"distriktssköterska": "S", "sjuksköterska": "S", "fysioterapeut": "F",
                      "psykolog": "P", "kurator": "K"}[profession]
            fte = rng.choice((0.8, 1.0)) if prefix == "S" else rng.choice((0.5, 0.8, 1.0))
        individual = None
        cap = 0
        if profession == DOCTOR and etype == PERMANENT:
            cap = int(s.specialist_capacity_per_fte * fte)
        elif profession == DOCTOR and etype == ST:
            individual = cap = int(rng.randint(*s.st_capacity_range) * fte)
        role = Role(
            role_id=f"R{self.a:03d}-{n:06d}",
            practitioner_id=self._hsa(f"{prefix}{self.a:03d}{n:06d}"),
            unit=unit.index,
            profession=profession,
            employment_type=etype,
            specialty="allmanmedicin" if profession == DOCTOR else None,
            fte=fte,
            valid_from=valid_from,
            valid_to=None,
            slot=slot,
            individual_capacity=individual,
            cap=cap,
        )
        unit.roles.append(role)
        self.roles.append(role)
        if profession == DOCTOR:
            self.summary.doctors += 1
        else:
            self.summary.other_staff += 1
        return role

    def _roster_timeline(self) -> list[tuple[int, int, Role]]:
        """(time, 0 started / 1 ended, role) for every roster change inside the period."""
        timeline: list[tuple[int, int, Role]] = []
        for role in self.roles:
            if role.valid_from >= self.start:
                timeline.append((ts(role.valid_from, 7 * 3600), 0, role))
            if role.valid_to is not None:
                timeline.append((ts(role.valid_to), 1, role))
        timeline.sort(key=lambda t: (t[0], t[1], t[2].role_id))
        return timeline

    def _role_started(self, role: Role, at: int) -> list[Emitted]:
        unit = self.units[role.unit]
        data: dict[str, Any] = {
            "role_id": role.role_id,
            "practitioner_id": role.practitioner_id,
            "care_unit_id": unit.hsa_id,
            "profession": role.profession,
            "legitimerad": True,
            "employment_type": role.employment_type,
            "fte": role.fte,
            "valid_from": iso_date(role.valid_from),
            "valid_to": None,
        }
        if role.specialty:
            data["specialty"] = role.specialty
        if role.individual_capacity is not None:
            data["individual_capacity"] = role.individual_capacity
        out = [Emitted("practitioner_role.started.v1", data, at)]
        if role.flk_eligible:
            out.append(Emitted("sim.list", {
                "list_id": role.list_id, "care_unit_id": unit.hsa_id,
                "display_name": f"{unit.name} {role.practitioner_id}", "list_kind": "doctor",
                "role_id": role.role_id, "practitioner_id": role.practitioner_id,
            }, at))
        return out

    def _role_ended(self, role: Role, at: int) -> Emitted:
        if role.profession == DOCTOR:
            self.summary.doctors_left += 1
        return Emitted("practitioner_role.ended.v1", {
            "role_id": role.role_id,
            "practitioner_id": role.practitioner_id,
            "care_unit_id": self.units[role.unit].hsa_id,
            "ended_on": iso_date(role.valid_to),  # type: ignore[arg-type]
        }, at)

    def _staff_for(self, ms: int, me: int) -> None:
        """Per unit and staff category: the roles that work some day in [ms, me)."""
        self.staff = []
        for unit in self.units:
            by_cat: dict[str, tuple[list[Role], list[float] | None]] = {}
            for cat in CATEGORIES:
                roles = [
                    r for r in unit.roles
                    if _category(r.profession) == cat and r.valid_from < me and (r.valid_to is None or r.valid_to > ms)
                ]
                stable = all(r.valid_from <= ms and (r.valid_to is None or r.valid_to >= me) for r in roles)
                cum = list(accumulate(r.fte for r in roles)) if stable and roles else None
                by_cat[cat] = (roles, cum)
            self.staff.append(by_cat)

    def _pick_staff(self, rng: random.Random, unit: int, cat: str, day: int) -> Role | None:
        roles, cum = self.staff[unit][cat]
        if not roles:
            return None
        if cum is not None:
            return rng.choices(roles, cum_weights=cum)[0]
        active = [r for r in roles if r.active_on(day)]
        if not active:
            return None
        return rng.choices(active, weights=[r.fte for r in active])[0]

    def _pick_flk(self, rng: random.Random, unit: int, day: int) -> Role | None:
        free = [r for r in self.staff[unit]["doctor"][0]
                if r.flk_eligible and r.list_size < r.cap and r.active_on(day)]
        if not free:
            return None
        return rng.choices(free, weights=[r.cap - r.list_size for r in free])[0]

    def _locum_on(self, fictive: FictiveList, day: int) -> Role | None:
        for role in self.staff[fictive.unit]["doctor"][0]:
            if role.slot == fictive.locum_slot and role.active_on(day):
                return role
        return None

    # ------------------------------------------------------------------ persons

    def _sample_age(self, rng: random.Random) -> tuple[float, float]:
        """(age in years, its percentile in the age distribution)."""
        u = rng.random()
        i = min(_bisect(self.age_cum, u), len(self.age_bands) - 1)
        lo, hi, share = self.age_bands[i]
        frac = rng.random()
        before = self.age_cum[i] - share
        return lo + frac * (hi - lo + 1), before + share * frac

    def _sample_rub(self, rng: random.Random, percentile: float) -> int:
        rho = self.s.rub_age_correlation
        z_age = _NORMAL.inv_cdf(min(max(percentile, 1e-6), 1 - 1e-6))
        z = rho * z_age + math.sqrt(1 - rho * rho) * rng.gauss(0.0, 1.0)
        return min(_bisect(self.rub_cum, _NORMAL.cdf(z)), 5)

    def _unique_id(self, rng: random.Random, birth: int) -> tuple[int, int]:
        """A birth date (possibly moved a day) and a birth number unique in the preset."""
        for attempt in range(400):
            day = birth + attempt // 8
            nnn = 1 + self.id_offset + self.id_stride * rng.randrange(self.id_slots)
            if nnn > 999:
                continue
            code = day * 1000 + nnn
            if code not in self.used_ids:
                self.used_ids.add(code)
                return day, nnn
        raise RuntimeError("no free birth number (population too dense for the id space)")

    def _new_person(self, rng: random.Random, ref_day: int, *, newborn: bool = False,
                    opening: bool = False) -> tuple[Person, str]:
        s = self.s
        if newborn:
            age, pct = 0.0, 0.0
            birth = ref_day
        else:
            age, pct = self._sample_age(rng)
            birth = ref_day - int(age * 365.25)
        birth, nnn = self._unique_id(rng, min(birth, ref_day))
        rub = 1 if newborn and rng.random() < 0.8 else self._sample_rub(rng, pct)
        sabo = False
        if age >= 65 and (opening or rng.random() < 0.2):
            share = 0.0
            for min_age, value in s.sabo_share_by_age:
                if age >= min_age:
                    share = value
            sabo = rng.random() < share
            if sabo:
                rub = max(rub, 3)
        listed = rng.random() >= s.unlisted_share
        unit = min(_bisect(self.unit_cum, rng.random()), len(self.units) - 1)
        pnr = personnummer12(date.fromordinal(birth), nnn)
        self.serial += 1
        person = Person(
            serial=self.serial,
            key=patient_key(PersonId("personnummer", pnr), self.sim.key),
            birth=birth,
            municipality_code=self.units[unit].municipality_code,
            unit=unit if listed else -1,
            rub=rub,
            sabo=sabo,
            protected=rng.random() < s.protected_share,
        )
        if sabo:
            person.sabo_residence_id = f"SABO{self.a:03d}-{person.serial:08d}"
        if person.age_on(ref_day) < 18:
            person.guardian_keys = self._pick_guardians(person)
        self.summary.people_registered += 1
        return person, pnr

    def _registered(self, p: Person, at: int) -> Emitted:
        data: dict[str, Any] = {
            "patient_key": p.key,
            "id_kind": "personnummer",
            "birth_date": iso_date(p.birth),
            "region_code": self.spec.region_code,
            "protected_identity": p.protected,
            "status": "folkbokford",
            "updated_at": iso_time(at),
        }
        if not p.protected:  # P2: nothing address-like for protected identities
            data["municipality_code"] = p.municipality_code
        if p.guardian_keys is not None:  # P3: a minor's vårdnadshavare, as the register states them
            data["guardian_keys"] = list(p.guardian_keys)
        return Emitted("person.registered.v1", data, at)

    def _risk(self, p: Person, run: int, at: int) -> Emitted:
        p.rub_reported = p.rub
        return Emitted("risk.assessed.v1", {
            "assessment_id": f"ACG{self.a:03d}-{run:02d}-{p.serial:08d}",
            "patient_key": p.key,
            "rub": p.rub,
            "acg_version": self.s.acg_version,
            "lookback_months": self.s.acg_lookback_months,
            "computed_at": iso_time(at),
        }, at)

    def _residence(self, p: Person, sabo_from: int, sabo_to: int | None, at: int) -> Emitted:
        p.sabo_from = sabo_from
        data: dict[str, Any] = {
            "residence_id": p.sabo_residence_id,
            "patient_key": p.key,
            "sabo_from": iso_date(sabo_from),
            "sabo_to": iso_date(sabo_to) if sabo_to is not None else None,
            "main_care_in_residence": main_care_in_residence(p.key, self.s.sabo_main_care_elsewhere_share),
            "recorded_at": iso_time(at),
        }
        if not p.protected:
            data["municipality_code"] = p.municipality_code
        return Emitted("residence.recorded.v1", data, at)

    def _guardians(self, rng: random.Random, day: int) -> list[str]:
        """Guardians for a listing request when the register names none (see ``_listing_request``)."""
        want = 2 if rng.random() < 0.85 else 1
        keys: list[str] = []
        for _ in range(12 * want):
            if len(keys) == want or not self.persons:
                break
            q = self.persons[rng.randrange(len(self.persons))]
            if not q.gone and 20 <= q.age_on(day) < 60 and q.key not in keys:
                keys.append(q.key)
        while len(keys) < want:  # a guardian outside the region: a valid key all the same
            g, nnn = self._unique_id(rng, day - 30 * 365 - rng.randrange(3650))
            keys.append(patient_key(PersonId("personnummer", personnummer12(date.fromordinal(g), nnn)), self.sim.key))
        return keys

    def _pick_guardians(self, child: Person) -> tuple[str, ...]:
        """P3: the child's one or two guardians — adults of the area who were 18–50 when the child was
        born, else people outside the region (a key all the same). Their own random stream; no birth
        number of the area is taken for a guardian outside it."""
        rng = self.guardian_rng
        want = 2 if rng.random() < self.s.two_guardians_share else 1
        keys: list[str] = []
        for _ in range(12 * want):
            if len(keys) == want or not self.persons:
                break
            q = self.persons[rng.randrange(len(self.persons))]
            if not q.gone and 18 <= (child.birth - q.birth) / 365.25 <= 50 and q.key not in keys:
                keys.append(q.key)
        while len(keys) < want:
            born = date.fromordinal(child.birth - rng.randint(18 * 365, 45 * 365))
            key = patient_key(PersonId("personnummer", personnummer12(born, rng.randrange(1, 1000))), self.sim.key)
            if key not in keys and key != child.key:
                keys.append(key)
        return tuple(keys)

    def _second_guardian(self, p: Person, day: int) -> str | None:
        """P3: for a minor's request by the guardians, whether one of two guardians asks alone and, if
        so, what the other answers: ``consent``, ``refuse`` or ``silent`` (never); None: both consent."""
        s = self.s
        if p.guardian_keys is None or len(p.guardian_keys) < 2 or p.age_on(day) >= 18:
            return None
        rng = self.consent_rng
        if rng.random() >= s.one_guardian_request_share:
            return None
        r = rng.random()
        return "refuse" if r < s.second_guardian_refuses_share else (
            "silent" if r < s.second_guardian_refuses_share + s.second_guardian_silent_share else "consent")

    def _await_second_guardian(self, p: Person, unit: int, day: int, answer: str) -> bool:
        """P3: the second guardian's ``listing.consent.v1`` some days after the request (held in
        ``pending`` until its month); nothing for one who never answers. True when the child is
        listed at ``unit`` by the consent within the period (else it stays where it was)."""
        counts = self.summary.guardian_consent
        counts["one_guardian_requests"] += 1
        if answer == "silent":
            counts["unanswered"] += 1
            return False
        rng = self.consent_rng
        answer_day = day + rng.randint(*self.s.second_guardian_answer_days)
        at = ts(answer_day, 8 * 3600 + rng.randrange(12 * 3600))
        command_id = self._command_id(rng)
        if at >= self.end_ts:  # after the period: still waiting at its end
            counts["unanswered"] += 1
            return False
        assert p.guardian_keys is not None
        item = Emitted("listing.consent.v1", {
            "command_id": command_id,
            "patient_key": p.key,
            "care_unit_id": self.units[unit].hsa_id,
            "guardian_key": p.guardian_keys[1],
            "decision": answer,
            "requested_at": iso_time(at),
            "effective_date": iso_date(answer_day),
            "channel": "1177",
            "requested_by": "guardian",
        }, at)
        self.pending.append(item)
        p.consent_item = item
        counts["consents" if answer == "consent" else "refusals"] += 1
        return answer == "consent"

    def _drop_answer(self, p: Person, at: int) -> None:
        """The child left the population before the second guardian answered: no answer comes."""
        item, p.consent_item = p.consent_item, None
        if item is not None and item.at > at:
            self.pending = [i for i in self.pending if i is not item]
            counts = self.summary.guardian_consent
            counts["consents" if item.data["decision"] == "consent" else "refusals"] -= 1
            counts["unanswered"] += 1

    def _listing_request(self, rng: random.Random, p: Person, at: int, effective: int, *, channel: str,
                         origin: str, initiated_by: str, unit: int | None = None,
                         one_guardian: bool = False) -> Emitted:
        data: dict[str, Any] = {
            "command_id": self._command_id(rng),
            "patient_key": p.key,
            "care_unit_id": self.units[p.unit if unit is None else unit].hsa_id,
            "requested_at": iso_time(at),
            "channel": channel,
            "effective_date": iso_date(effective),
            "origin": origin,
            "initiated_by": initiated_by,
        }
        minor = p.age_on(effective) < 18
        if channel == "1177":
            data["requested_by"] = "guardian" if minor else "patient"
        if minor and initiated_by == "person":  # P3: the guardians chose (also for imported listings)
            # Drawn from the main stream as before the register stated guardians, so that a seed's stream
            # stays what it was; used when the register names none: a person registered as an adult
            # but a minor on the listing's date (an imported listing of years ago) — the request names
            # those who chose then. A registered minor's request names the register's guardians.
            drawn = self._guardians(rng, effective)
            keys = list(p.guardian_keys) if p.guardian_keys is not None else drawn
            data["guardian_count"] = len(keys)
            data["consenting_guardian_keys"] = keys[:1] if one_guardian else keys
        return Emitted("listing.request.v1", data, at)

    def _assign(self, rng: random.Random, p: Person, at: int, effective: int, channel: str,
                role: Role | None = None, fictive: FictiveList | None = None) -> Emitted:
        unit = self.units[p.unit]
        data: dict[str, Any] = {
            "command_id": self._command_id(rng),
            "patient_key": p.key,
            "care_unit_id": unit.hsa_id,
            "requested_at": iso_time(at),
            "channel": channel,
            "effective_date": iso_date(effective),
        }
        if channel == "1177":
            data["requested_by"] = "guardian" if p.age_on(effective) < 18 else "patient"
        elif channel == "ehr":
            nurse = self._pick_staff(rng, p.unit, NURSE, effective)
            data["requested_by"] = (nurse or role or self.units[p.unit].roles[0]).practitioner_id
        if role is not None:
            data["practitioner_id"] = role.practitioner_id
            data["list_id"] = role.list_id
            role.list_size += 1
            p.flk, p.fictive, p.flk_lost_on = role, None, 0
        elif fictive is not None:
            data["list_id"] = fictive.list_id
            p.fictive = fictive
        return Emitted("fast_lakarkontakt.assign.v1", data, at)

    def _release_flk(self, p: Person) -> None:
        if p.flk is not None:
            p.flk.list_size -= 1
        p.flk = None
        p.fictive = None

    def _extract_rows(self, rng: random.Random, p: Person, pnr: str, at: int) -> list[Emitted]:
        """The FLISA-style listing extract at the start (the one output with personnummer)."""
        unit = self.units[p.unit]
        pnr_text = f"{pnr[:8]}-{pnr[8:]}"
        doctor = p.flk.practitioner_id if p.flk else ""
        etype = p.flk.employment_type if p.flk else ""
        row = {"personnummer": pnr_text, "care_unit_id": unit.hsa_id, "doctor_id": doctor,
               "doctor_employment_type": etype, "violation": ""}
        rows = [row]
        if rng.random() < self.s.extract_violation_share:
            kind = rng.choice(EXTRACT_VIOLATIONS)
            if kind == "locum_as_flk":
                locums = [r for r in self.roles if r.profession == DOCTOR and r.employment_type in LOCUM_TYPES
                          and r.active_on(self.start)]
                if locums:
                    locum = locums[rng.randrange(len(locums))]
                    row["doctor_id"], row["doctor_employment_type"] = locum.practitioner_id, locum.employment_type
                else:
                    kind = "invalid_personnummer"
            if kind == "duplicate_listing":
                if len(self.units) > 1:
                    other = self.units[(p.unit + 1 + rng.randrange(len(self.units) - 1)) % len(self.units)]
                    rows.append({"personnummer": pnr_text, "care_unit_id": other.hsa_id, "doctor_id": "",
                                 "doctor_employment_type": "", "violation": kind})
                else:
                    kind = "invalid_personnummer"
            if kind == "unknown_unit":
                row["care_unit_id"] = self._hsa(f"VC{self.a:03d}9{p.serial:06d}")
            if kind == "invalid_personnummer":
                row["personnummer"] = pnr_text[:-1] + str((int(pnr_text[-1]) + 1) % 10)
            if kind != "duplicate_listing":
                row["violation"] = kind
            self.summary.extract_violations[kind] += 1
        return [Emitted("sim.extract_row", r, at) for r in rows]

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
        yield from history

    def _history(self, rng: random.Random, p: Person, add) -> None:
        """The person's visits in the ``history_months`` before the period, published at its start
        (as a history import would be) with their own dates; their state as at the start."""
        s = self.s
        first = max(self.sim.history_start.toordinal(), p.birth + 1)
        k = 0
        while True:
            ms = max(add_months(self.sim.history_start, k).toordinal(), first)
            if ms >= self.start:
                return
            me = min(add_months(self.sim.history_start, k + 1).toordinal(), self.start)
            k += 1
            if me <= ms:
                continue
            age = (ms - p.birth) / 365.25
            rate = s.visits_per_year_by_rub[p.rub]
            if age < 5:
                rate *= 1.3
            elif age >= 80:
                rate *= 1.2
            if p.sabo:
                rate += s.sabo_extra_visits_per_year
            n = _poisson(rng, rate * (me - ms) / 365.25)
            for vday in sorted(ms + rng.randrange(me - ms) for _ in range(n)):
                self._visit(rng, p, vday, add, published_at=self.start_ts)

    def _open_listing(self, rng: random.Random, p: Person, at: int) -> list[Emitted]:
        s = self.s
        unit = self.units[p.unit]
        age_days = self.start - p.birth
        since = self.start - rng.randrange(0, max(1, min(age_days, 10 * 365)))
        p.last_relisted = since
        no_choice = rng.random() < 0.2
        out = [self._listing_request(rng, p, at, since, channel="import",
                                     origin="no_choice_placement" if no_choice else "active_choice",
                                     initiated_by="region" if no_choice else "person")]
        if p.sabo:
            p_named = s.flk_sabo_share * min(unit.flk_factor, 1.3)
        else:
            p_named = s.flk_initial_share * self.rub_mult[p.rub] * unit.flk_factor
        role = self._pick_flk(rng, p.unit, self.start) if rng.random() < p_named else None
        if role is not None:
            effective = max(since, role.valid_from)
            out.append(self._assign(rng, p, at, effective, "import", role=role))
        elif unit.fictive_lists and rng.random() < s.fictive_share_at_locum_units:
            fl = unit.fictive_lists[rng.randrange(len(unit.fictive_lists))]
            out.append(self._assign(rng, p, at, since, "import", fictive=fl))
        return out

    # ------------------------------------------------------------------ one month

    def _month(self, k: int, ms: int, me: int, batch: list[Emitted]) -> None:
        s = self.s
        rng = random.Random(f"{self.base}:m{k}")
        add = batch.append
        days = me - ms
        frac = days / 30.44
        year_frac = days / 365.25
        acg_run = k > 0 and k % s.acg_run_every_months == 0
        acg_at = ts(ms, 3 * 3600)
        run_no = k // max(1, s.acg_run_every_months)
        death_month = self.death_month
        sabo_mult = s.sabo_death_multiplier
        emig = s.emigration_yearly / 12
        move = s.move_out_yearly / 12
        relist = s.relisting_monthly if len(self.units) > 1 else 0.0
        visits_by_rub = s.visits_per_year_by_rub
        sabo_entry = s.sabo_entry_monthly_by_age
        n_alive = 0
        for p in self.persons:
            if p.gone:
                continue
            n_alive += 1
            age = (ms - p.birth) / 365.25
            if acg_run:
                r = rng.random()
                if r < self.rub_up[p.rub]:
                    p.rub += 1
                elif r < self.rub_up[p.rub] + self.rub_down[p.rub]:
                    p.rub -= 1
                if p.rub != p.rub_reported or s.acg_emit_unchanged:
                    add(self._risk(p, run_no, acg_at))
            young_adult = 18 <= age < 46
            h_death = death_month[min(int(age), 110)] * (sabo_mult if p.sabo else 1.0)
            h_emig = emig * (2 if young_adult else 1)
            h_move = move * (2 if young_adult else 1)
            h_prot = 0.0 if p.protected else s.protected_monthly
            h_sabo = 0.0
            if not p.sabo and age >= 80:
                for min_age, value in sabo_entry:
                    if age >= min_age:
                        h_sabo = value
            h_relist = relist if p.unit >= 0 and ms - p.last_relisted > 183 else 0.0
            h_assign = 0.0
            if p.unit >= 0 and p.flk is None:
                if p.flk_lost_on:
                    h_assign = s.flk_reassign_after_leave_monthly
                else:
                    h_assign = s.flk_assign_monthly * (
                        s.flk_assign_sabo_factor if p.sabo else (s.flk_assign_high_rub_factor if p.rub >= 4 else 1.0))
            hazards = (h_death, h_emig, h_move, h_prot, h_sabo, h_relist, h_assign)
            total = sum(hazards)
            changes: list[tuple[int, int]] = []
            if rng.random() < total * frac:
                pick = rng.random() * total
                kind = 0
                while kind < 6 and pick >= hazards[kind]:
                    pick -= hazards[kind]
                    kind += 1
                changes.append((ms + rng.randrange(days), kind))
            if p.flk is not None and p.flk.valid_to is not None and p.flk.valid_to < me:
                changes.append((max(p.flk.valid_to, ms), 9))  # the FLK's doctor left (F8)
                changes.sort()
            rate = visits_by_rub[p.rub]
            if age < 5:
                rate *= 1.3
            elif age >= 80:
                rate *= 1.2
            if p.sabo:
                rate += s.sabo_extra_visits_per_year
            n_visits = _poisson(rng, rate * year_frac)
            if not changes and not n_visits:
                continue
            visit_days = sorted(ms + rng.randrange(days) for _ in range(n_visits))
            ci = 0
            for vday in visit_days:
                while ci < len(changes) and changes[ci][0] <= vday:
                    self._change(rng, p, changes[ci][0], changes[ci][1], add)
                    ci += 1
                if p.gone:
                    break
                self._visit(rng, p, vday, add)
            while ci < len(changes) and not p.gone:
                self._change(rng, p, changes[ci][0], changes[ci][1], add)
                ci += 1
        # births and people moving in: registered (and listed) this month, visits from next month
        births = _poisson(rng, n_alive * s.births_yearly * year_frac)
        movers = _poisson(rng, n_alive * s.move_in_yearly * year_frac)
        for i in range(births + movers):
            day = ms + rng.randrange(days)
            newborn = i < births
            p, _ = self._new_person(rng, day, newborn=newborn)
            at = ts(day, 6 * 3600 + rng.randrange(3600))
            add(self._registered(p, at))
            if p.sabo:
                add(self._residence(p, day, None, at + 60))
            if p.unit >= 0 and (newborn or rng.random() < 0.9):
                p.last_relisted = day
                if newborn:
                    add(self._listing_request(rng, p, at + 120, day, channel="admin", origin="assigned",
                                              initiated_by="region"))
                elif rng.random() < 0.7:
                    answer = self._second_guardian(p, day)
                    add(self._listing_request(rng, p, at + 120, day, channel="1177", origin="active_choice",
                                              initiated_by="person", one_guardian=answer is not None))
                    if answer is not None and not self._await_second_guardian(p, p.unit, day, answer):
                        p.unit = -1  # refused, never answered or not yet: not listed
                else:
                    add(self._listing_request(rng, p, at + 120, day, channel="admin",
                                              origin="no_choice_placement", initiated_by="region"))
            else:
                p.unit = -1
            self.persons.append(p)

    def _change(self, rng: random.Random, p: Person, day: int, kind: int, add) -> None:
        s = self.s
        at = ts(day, 6 * 3600 + rng.randrange(3600))
        if kind in (0, 1, 2):  # death, emigration, moving out of the region (P1)
            status = ("deceased", "emigrated", "moved_out_of_region")[kind]
            add(Emitted("person.updated.v1", {
                "patient_key": p.key, "status": status, "status_date": iso_date(day), "updated_at": iso_time(at),
            }, at))
            if p.sabo and p.sabo_residence_id:  # the municipality closes the residence
                add(self._residence(p, p.sabo_from, day, at + 3600))
            self._release_flk(p)
            self._drop_answer(p, at)
            p.gone = True
        elif kind == 3:  # protected identity (P2)
            p.protected = True
            add(Emitted("person.updated.v1", {
                "patient_key": p.key, "protected_identity": True, "status": "folkbokford",
                "updated_at": iso_time(at),
            }, at))
        elif kind == 4:  # moved into SÄBO
            p.sabo = True
            p.sabo_residence_id = f"SABO{self.a:03d}-{p.serial:08d}"
            p.rub = max(p.rub, 3)  # the next ACG run reports it
            add(self._residence(p, day, None, at))
        elif kind == 5:  # the person chooses another unit (L1: the new listing ends the old one)
            others = len(self.units) - 1
            new_unit = (p.unit + 1 + min(int(rng.random() * others), others - 1)) % len(self.units)
            answer = self._second_guardian(p, day)
            p.last_relisted = day
            add(self._listing_request(rng, p, at, day, channel="1177", origin="active_choice",
                                      initiated_by="person", unit=new_unit, one_guardian=answer is not None))
            if answer is None or self._await_second_guardian(p, new_unit, day, answer):
                self._release_flk(p)
                p.unit = new_unit
                p.usual_doctor = p.usual_nurse = None
                p.flk_lost_on = 0
            # refused, never answered or not yet: the child stays listed where it was, with its FLK
        elif kind == 6:  # an FLK is assigned
            role = self._pick_flk(rng, p.unit, day)
            if role is not None:
                add(self._assign(rng, p, at, day, "1177" if rng.random() < 0.3 else "ehr", role=role))
        elif kind == 9:  # the FLK's doctor left: the listing service ends the assignment (F8)
            p.flk = None
            p.flk_lost_on = day

    def _visit(self, rng: random.Random, p: Person, day: int, add, published_at: int | None = None) -> None:
        """One contact on ``day``. ``published_at``: a history visit, published then (before it, with
        its cancellation if any) and counted apart from the period's visits."""
        s = self.s
        if p.unit >= 0 and rng.random() < s.at_listing_unit_share:
            unit = p.unit
        else:
            unit = min(_bisect(self.unit_cum, rng.random()), len(self.units) - 1)
        at_home_unit = unit == p.unit
        age = (day - p.birth) / 365.25
        share = s.doctor_share_young_children if age < 7 else (s.doctor_share_high_rub if p.rub >= 4 else s.doctor_share)
        role: Role | None = None
        u = self.units[unit]
        if rng.random() < share:
            flk = p.flk if at_home_unit and p.flk is not None and p.flk.active_on(day) else None
            if flk is not None:
                role = flk if rng.random() < u.kpc_with_flk else self._pick_staff(rng, unit, "doctor", day)
                stats = self.summary.unit_continuity[u.hsa_id]
                stats[0] += 1
                stats[1] += role is flk
            elif at_home_unit and p.fictive is not None and rng.random() < s.fictive_locum_continuity:
                role = self._locum_on(p.fictive, day) or self._pick_staff(rng, unit, "doctor", day)
            elif at_home_unit and rng.random() < u.usual_without_flk:
                usual = p.usual_doctor
                if usual is None or not usual.active_on(day):
                    usual = p.usual_doctor = self._pick_staff(rng, unit, "doctor", day)
                role = usual
            else:
                role = self._pick_staff(rng, unit, "doctor", day)
        else:
            cat = self.other_cats[min(_bisect(self.other_cum, rng.random()), len(self.other_cats) - 1)]
            if cat == NURSE and at_home_unit and rng.random() < u.nurse_continuity:
                usual = p.usual_nurse
                if usual is None or not usual.active_on(day):
                    usual = p.usual_nurse = self._pick_staff(rng, unit, NURSE, day)
                role = usual
            else:
                role = self._pick_staff(rng, unit, cat, day)
        if role is None:
            role = self._pick_staff(rng, unit, NURSE, day) or self._pick_staff(rng, unit, "doctor", day)
            if role is None:
                return
        r = rng.random()
        if role.profession == DOCTOR:
            contact = "hembesok" if p.sabo and r < 0.5 else ("besok" if r < 0.66 else ("telefon" if r < 0.86 else "digital"))
        else:
            contact = "hembesok" if p.sabo and r < 0.6 else ("besok" if r < 0.5 else ("telefon" if r < 0.86 else "digital"))
        at = ts(day, 7 * 3600 + 900 * rng.randrange(36))
        history = published_at is not None
        if history:
            self.history_seq += 1
            visit_id = f"H{self.a:03d}-{self.history_seq:09d}"
        else:
            self.visit_seq += 1
            visit_id = f"V{self.a:03d}-{self.visit_seq:09d}"
        data = {
            "visit_id": visit_id,
            "patient_key": p.key,
            "practitioner_id": role.practitioner_id,
            "profession": role.profession,
            "care_unit_id": u.hsa_id,
            "contact_type": contact,
            "occurred_at": iso_time(at),
            "source_system": self.spec.source_system,
        }
        if history:
            self.summary.history_visits += 1
        else:
            self.summary.visits += 1
        if rng.random() < s.cancelled_share:
            cancel_at = at + 3600 + rng.randrange(72 * 3600)
            if cancel_at < (published_at if history else self.end_ts):
                r = rng.random()
                reason = "entered_in_error" if r < 0.4 else ("no_show" if r < 0.8 else "cancelled")
                cancelled = Emitted("visit.cancelled.v1", {
                    "visit_id": visit_id, "patient_key": p.key, "cancelled_at": iso_time(cancel_at),
                    "reason": reason,
                }, published_at if history else cancel_at)
                add(Emitted("sim.visit_voided", {"visit_id": visit_id}, published_at if history else at))
                if history:
                    add(Emitted("visit.recorded.v1", data, published_at))
                    add(cancelled)
                    self.summary.history_visits_cancelled += 1
                    return
                self.pending.append(cancelled)
                self.summary.visits_cancelled += 1
        add(Emitted("visit.recorded.v1", data, published_at if history else at))


def _category(profession: str) -> str:
    if profession == DOCTOR:
        return "doctor"
    if profession in ("distriktssköterska", "sjuksköterska"):
        return NURSE
    return profession
