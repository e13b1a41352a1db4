"""The area's care units and staff: the roster, its timeline, and who is on duty."""
from __future__ import annotations

import math
import random
import uuid
from itertools import accumulate
from typing import Any

from tools.simulator.common import CATEGORIES, Emitted, _category, iso_date, ts
from tools.simulator.identities import practitioner_name
from tools.simulator.model import (
    DOCTOR,
    LOCUM_TYPES,
    PERMANENT,
    ST,
    FictiveList,
    Role,
    Unit,
)


class RosterMixin:
    """Part of :class:`tools.simulator.generate._Area` (its state is set up in ``_Area.__init__``)."""

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
            "practitioner_name": practitioner_name(role.practitioner_id),
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
