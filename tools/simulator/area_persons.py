"""The area's people: who they are, their registrations, risk, residence, guardians, listing and FLK."""
from __future__ import annotations

import math
import random
from bisect import bisect_left as _bisect
from datetime import date
from typing import Any

from flk.security.pseudonym import PersonId, patient_key
from tools.simulator.common import (
    _NORMAL,
    EXTRACT_VIOLATIONS,
    NURSE,
    Emitted,
    iso_date,
    iso_time,
    main_care_in_residence,
    personnummer12,
    ts,
)
from tools.simulator.model import (
    DOCTOR,
    LOCUM_TYPES,
    FictiveList,
    Person,
    Role,
)


class PersonsMixin:
    """Part of :class:`tools.simulator.generate._Area` (its state is set up in ``_Area.__init__``)."""

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
