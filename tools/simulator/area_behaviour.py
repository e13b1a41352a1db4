"""The area's months: what happens to people (changes, visits) and the history before the start."""
from __future__ import annotations

import random
from bisect import bisect_left as _bisect

from flk.dates import add_months
from tools.simulator.common import NURSE, Emitted, _poisson, iso_date, iso_time, ts
from tools.simulator.model import (
    DOCTOR,
    Person,
    Role,
)


class BehaviourMixin:
    """Part of :class:`tools.simulator.generate._Area` (its state is set up in ``_Area.__init__``)."""

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
